"""Reorienting a scan's array to LPS (the LUNA16 habit) without moving it in the world.

A NIfTI in RAS reads with direction ``diag(-1, -1, 1)``; a DICOM series stacked head to feet
has ``z`` decreasing. Views that assume array axes x, y, z run left, posterior, superior show
such scans mirrored or upside down. `reorient_to_lps` permutes and flips the array axes
(``SimpleITK.DICOMOrient``) so that the direction becomes the identity; the world position
of every voxel and its HU are kept exactly.
"""

from __future__ import annotations

import numpy as np

from nodulekit.data.scan import IDENTITY_DIRECTION, Scan


def reorient_to_lps(scan: Scan) -> Scan:
    """``scan`` with its array axes permuted/flipped so that the direction is LPS (identity).

    World geometry is kept: ``voxel_to_world`` of any voxel of the result is the world point
    of the same voxel (same HU) of ``scan``. An identity-direction scan is returned unchanged
    (the same object). Oblique directions are brought to the nearest LPS axes by
    ``SimpleITK.DICOMOrient`` (the result keeps what direction is left).

    Examples
    --------
    >>> ras = Scan(np.arange(8, dtype=np.int16).reshape(2, 2, 2), (0, 0, 0), (1, 1, 1),
    ...            direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))
    >>> lps = reorient_to_lps(ras)
    >>> lps.orientation, lps.origin
    ('LPS', (-1.0, -1.0, 0.0))
    """
    if np.allclose(scan.direction, IDENTITY_DIRECTION, atol=1e-6):
        return scan
    import SimpleITK as sitk

    image = sitk.DICOMOrient(scan.to_sitk(), "LPS")
    return Scan(
        sitk.GetArrayFromImage(image),
        image.GetOrigin(),
        image.GetSpacing(),
        image.GetDirection(),
        scan.seriesuid,
        scan.path,
        scan.metadata,
    )
