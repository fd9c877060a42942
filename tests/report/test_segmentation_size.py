"""Diameters from a segmentation: the connected region at the finding, measured by
`nodulekit.evaluate.segmentation.equivalent_diameter_mm` (known spheres, known answers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from nodulekit.data import Scan


class ThresholdNet(nn.Module):
    """A stand-in 3D U-Net: 'nodule' wherever the normalised HU exceeds 0.5 (about -300 HU)."""

    dims, levels, in_channels = 3, 1, 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - 0.5) * 100.0


def two_spheres() -> tuple[Scan, list[tuple[np.ndarray, float]]]:
    """Lung air with a 10 mm and a 6 mm sphere 16 mm apart (1 mm voxels)."""
    shape = (48, 48, 48)
    array = np.full(shape, -850, np.int16)
    grid = np.indices(shape).transpose(1, 2, 3, 0).astype(float)
    spheres = [(np.array([24.0, 24.0, 16.0]), 10.0), (np.array([24.0, 24.0, 32.0]), 6.0)]
    for centre_zyx, diameter in spheres:
        array[np.linalg.norm(grid - centre_zyx, axis=-1) <= diameter / 2] = 40
    scan = Scan(array, (-24.0, -24.0, -24.0), (1.0, 1.0, 1.0))
    return scan, [(scan.voxel_to_world(c), d) for c, d in spheres]


def test_each_finding_measures_its_own_region():
    from nodulekit.report.findings import segmented_diameter_mm

    scan, spheres = two_spheres()
    for centre_xyz, diameter in spheres:
        measured = segmented_diameter_mm(scan, ThresholdNet(), centre_xyz, device="cpu")
        assert measured == pytest.approx(diameter, rel=0.08)
    empty = scan.with_array(np.full(scan.shape, -850, np.int16))
    assert np.isnan(segmented_diameter_mm(empty, ThresholdNet(), spheres[0][0], device="cpu"))


def test_findings_say_their_sizes_come_from_the_segmentation():
    from nodulekit.report.findings import SIZE_FROM_SEGMENTATION, findings_table

    scan, spheres = two_spheres()
    marks = pd.DataFrame([{"coordX": c[0], "coordY": c[1], "coordZ": c[2], "probability": p,
                           "diameter_mm": 99.0, "blob_score": 1.0}
                          for (c, _), p in zip(spheres, (0.3, 0.8), strict=True)])  # fmt: skip
    table = findings_table(scan, marks, segmenter=ThresholdNet(), device="cpu")
    assert table["probability"].tolist() == [0.8, 0.3]
    assert table["diameter_mm"].round().tolist() == [6.0, 10.0]  # not the blob's 99 mm
    assert set(table["diameter_source"]) == {SIZE_FROM_SEGMENTATION}


def test_a_unet_checkpoint_loads_as_the_segmenter(tmp_path):
    from nodulekit.models.unet import NoduleUNet
    from nodulekit.report.findings import load_segmenter
    from nodulekit.train.checkpoint import save_checkpoint

    options = {"dims": 2, "channels": [4, 8]}
    path = save_checkpoint(tmp_path / "unet.pt", model=NoduleUNet(**options), epoch=0,
                           config={"model": "unet", "model_options": options})  # fmt: skip
    net = load_segmenter(path, device="cpu")
    assert isinstance(net, NoduleUNet) and not net.training
