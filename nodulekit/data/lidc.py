"""LIDC-IDRI readers' annotations: parse the XML, rasterise contours, group marks, consensus.

Each LIDC-IDRI series ships with one XML file holding up to four radiologists' reading
sessions. A reader marks a nodule of 3 mm or more with its outline on every slice it crosses
(``unblindedReadNodule`` with ``roi``/``edgeMap`` points, pixel column ``x`` and row ``y``), a
nodule under 3 mm with a single point, and a non-nodule (a finding the reader judged not to be
a nodule) with a single ``locus``. LUNA16 was built from these readings: nodules of 3 mm or more
accepted by at least 3 of the 4 readers went into ``annotations.csv``; the rest went into
``annotations_excluded.csv``.

The functions here follow the usual LIDC practice (as pylidc does):

- an outline is filled on its slice without the outline's own pixels (readers were asked to
  draw just outside the nodule); outlines with ``inclusion`` FALSE cut holes;
- a reader's outline is matched to its slice by SOP Instance UID when the DICOM series is at
  hand, otherwise by its z position;
- marks of different readers are one nodule when they overlap or come within ``tolerance_mm``
  of each other (single-linkage);
- the consensus mask at agreement level ``level`` holds the voxels inside at least
  ``level`` x (the number of readers who outlined the nodule) outlines (50% by default).

Examples
--------
>>> from nodulekit.data.lidc import read_lidc_xml
>>> reading = read_lidc_xml(path)  # doctest: +SKIP
>>> reading.marks_table()  # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nodulekit.data.scan import Scan
from nodulekit.errors import GeometryError, NodulekitError

__all__ = [
    "CHARACTERISTICS",
    "LidcAnnotationError",
    "LidcMark",
    "LidcNodule",
    "LidcReading",
    "LidcRoi",
    "LidcWarning",
    "consensus_nodules",
    "find_lidc_xml",
    "lidc_annotations",
    "lidc_annotations_table",
    "read_lidc_xml",
    "slice_lookup",
]

#: The nine LIDC characteristics each reader rates for a nodule of 3 mm or more.
CHARACTERISTICS = (
    "subtlety",
    "internalStructure",
    "calcification",
    "sphericity",
    "margin",
    "lobulation",
    "spiculation",
    "texture",
    "malignancy",
)


class LidcAnnotationError(NodulekitError, ValueError):
    """An LIDC reader XML file is malformed or does not fit the series it is read against."""


class LidcWarning(UserWarning):
    """Something in an LIDC XML file was kept in a weaker form (an outline kept as a point)."""


@dataclass(frozen=True)
class LidcRoi:
    """One outline (or point) of one reader on one slice.

    ``points_xy`` holds pixel coordinates (column, row) of the slice, as the XML stores them.
    """

    z_mm: float
    sop_uid: str
    inclusion: bool
    points_xy: np.ndarray = field(repr=False)

    @property
    def n_points(self) -> int:
        return len(self.points_xy)


@dataclass(frozen=True)
class LidcMark:
    """One reader's mark: an outlined nodule (>= 3 mm), a point nodule (< 3 mm) or a non-nodule."""

    reader: int  # 1-based, in the order of the reading sessions in the file
    mark_id: str
    kind: str  # "nodule", "small nodule" or "non-nodule"
    rois: tuple[LidcRoi, ...] = field(repr=False)
    characteristics: Mapping[str, int] = field(default_factory=dict, repr=False)

    @property
    def is_outlined(self) -> bool:
        return self.kind == "nodule"


@dataclass(frozen=True)
class LidcReading:
    """All reading sessions of one LIDC XML file."""

    path: Path
    seriesuid: str
    n_readers: int
    marks: tuple[LidcMark, ...] = field(repr=False)
    n_kept_as_points: int = 0

    def __repr__(self) -> str:
        kinds = pd.Series([m.kind for m in self.marks]).value_counts().to_dict()
        return (
            f"LidcReading({self.path.name}, series {self.seriesuid}, {self.n_readers} readers, "
            f"marks {kinds})"
        )

    def marks_table(self) -> pd.DataFrame:
        """One row per mark: reader, id, kind, slices, and the reader's ratings (NaN if none)."""
        rows = []
        for mark in self.marks:
            row: dict[str, object] = {
                "reader": mark.reader,
                "mark_id": mark.mark_id,
                "kind": mark.kind,
                "n_slices": len({r.z_mm for r in mark.rois}),
            }
            row.update({name: mark.characteristics.get(name, np.nan) for name in CHARACTERISTICS})
            rows.append(row)
        return pd.DataFrame(rows)


def _ns(tag: str) -> str:
    return tag.split("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if _ns(child.tag) == name:
            return child
    return None


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _ns(child.tag) == name]


def _text(element: ET.Element, name: str, path: Path, default: str | None = None) -> str:
    child = _child(element, name)
    if child is None or child.text is None or not child.text.strip():
        if default is not None:
            return default
        raise LidcAnnotationError(
            f"{path}: an <{_ns(element.tag)}> element has no <{name}>; the file is not a "
            "complete LIDC reading (re-download the XML of this series from TCIA)"
        )
    return child.text.strip()


def _points(element: ET.Element, tag: str, path: Path) -> np.ndarray:
    pts = []
    for point in _children(element, tag):
        try:
            pts.append((int(_text(point, "xCoord", path)), int(_text(point, "yCoord", path))))
        except ValueError as e:
            raise LidcAnnotationError(
                f"{path}: a <{tag}> holds a non-integer pixel coordinate ({e})"
            ) from e
    return np.asarray(pts, dtype=np.int64).reshape(-1, 2)


def _float(text: str, path: Path, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise LidcAnnotationError(f"{path}: {what} is {text!r}, not a number in mm")
    return value


def _roi(element: ET.Element, path: Path) -> LidcRoi:
    inclusion = _text(element, "inclusion", path, default="TRUE").upper() != "FALSE"
    return LidcRoi(
        z_mm=_float(_text(element, "imageZposition", path), path, "imageZposition"),
        sop_uid=_text(element, "imageSOP_UID", path),
        inclusion=inclusion,
        points_xy=_points(element, "edgeMap", path),
    )


def _characteristics(element: ET.Element) -> dict[str, int]:
    found = _child(element, "characteristics")
    out: dict[str, int] = {}
    if found is None:
        return out
    for name in CHARACTERISTICS:
        child = _child(found, name)
        if child is not None and child.text and child.text.strip().lstrip("-").isdigit():
            out[name] = int(child.text.strip())
    return out


def _is_closed_outline(roi: LidcRoi) -> bool:
    """An outline that can be filled: at least 3 distinct points, first and last adjacent."""
    if len(np.unique(roi.points_xy, axis=0)) < 3:
        return False
    gap = np.abs(roi.points_xy[0] - roi.points_xy[-1]).max()
    return bool(gap <= 1)


def _nodule_mark(element: ET.Element, reader: int, path: Path) -> tuple[LidcMark, bool]:
    rois = tuple(_roi(r, path) for r in _children(element, "roi"))
    mark_id = _text(element, "noduleID", path)
    if not rois:
        raise LidcAnnotationError(f"{path}: reader {reader}'s nodule {mark_id!r} has no <roi>")
    multi = [r for r in rois if r.n_points > 1]
    if not multi:  # LIDC's own convention: one point per slice marks a nodule under 3 mm
        return LidcMark(reader, mark_id, "small nodule", rois, _characteristics(element)), False
    if not all(_is_closed_outline(r) for r in multi if r.inclusion):
        return LidcMark(reader, mark_id, "small nodule", rois, _characteristics(element)), True
    return LidcMark(reader, mark_id, "nodule", rois, _characteristics(element)), False


def read_lidc_xml(path: str | Path) -> LidcReading:
    """Parse every reading session of an LIDC-IDRI XML file.

    Parameters
    ----------
    path : path
        The ``.xml`` file that ships beside an LIDC-IDRI DICOM series.

    Returns
    -------
    LidcReading
        The marks of every reader. An outline that is not closed or has fewer than three
        points is kept as a point mark ("small nodule") and counted in a `LidcWarning`.

    Raises
    ------
    LidcAnnotationError
        If the file is not XML, holds no reading session, or misses a required element.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise LidcAnnotationError(f"{path}: not a readable LIDC XML file ({e})") from e
    header = _child(root, "ResponseHeader")
    seriesuid = _text(header, "SeriesInstanceUid", path, default="") if header is not None else ""
    sessions = _children(root, "readingSession")
    if not sessions:
        raise LidcAnnotationError(
            f"{path}: no <readingSession> found; is this an LIDC-IDRI reader XML "
            "(the file beside the DICOM slices of an LIDC series)?"
        )
    marks: list[LidcMark] = []
    kept_as_points = 0
    for reader, session in enumerate(sessions, start=1):
        for element in _children(session, "unblindedReadNodule"):
            mark, downgraded = _nodule_mark(element, reader, path)
            marks.append(mark)
            kept_as_points += downgraded
        for element in _children(session, "nonNodule"):
            locus = _points(element, "locus", path)
            roi = LidcRoi(
                z_mm=_float(_text(element, "imageZposition", path), path, "imageZposition"),
                sop_uid=_text(element, "imageSOP_UID", path),
                inclusion=True,
                points_xy=locus,
            )
            marks.append(
                LidcMark(reader, _text(element, "nonNoduleID", path), "non-nodule", (roi,))
            )
    if kept_as_points:
        warnings.warn(
            f"{path}: {kept_as_points} outline(s) not closed or with fewer than 3 points were "
            "kept as point marks (treated like nodules under 3 mm)",
            LidcWarning,
            stacklevel=2,
        )
    return LidcReading(path, seriesuid, len(sessions), tuple(marks), kept_as_points)


def find_lidc_xml(series_dir: str | Path) -> Path:
    """The LIDC reader XML inside a DICOM series folder (searched recursively)."""
    series_dir = Path(series_dir)
    if series_dir.is_file() and series_dir.suffix.lower() == ".xml":
        return series_dir
    found = sorted(series_dir.rglob("*.xml"))
    if not found:
        raise LidcAnnotationError(
            f"{series_dir}: no .xml file here; LIDC-IDRI ships one reader XML per series "
            "beside its DICOM slices (download the series with its annotations from TCIA)"
        )
    if len(found) > 1:
        raise LidcAnnotationError(
            f"{series_dir}: {len(found)} XML files ({', '.join(p.name for p in found[:5])}); "
            "pass the one that belongs to this series"
        )
    return found[0]


def slice_lookup(series_dir: str | Path, scan: Scan) -> dict[str, int]:
    """SOP Instance UID -> slice index (z) of ``scan``, from the DICOM headers of a series.

    Raises
    ------
    GeometryError
        If a file's slice position is not on one of the scan's slices.
    """
    import SimpleITK as sitk

    lookup: dict[str, int] = {}
    reader = sitk.ImageFileReader()
    reader.LoadPrivateTagsOff()
    for file in sorted(Path(series_dir).rglob("*")):
        if not file.is_file() or file.suffix.lower() in (".xml", ".txt", ".csv"):
            continue
        reader.SetFileName(str(file))
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            continue
        if not (reader.HasMetaDataKey("0008|0018") and reader.HasMetaDataKey("0020|0032")):
            continue
        if (
            reader.HasMetaDataKey("0020|000e")
            and scan.seriesuid
            and reader.GetMetaData("0020|000e").strip() != scan.seriesuid
        ):
            continue
        position = [float(v) for v in reader.GetMetaData("0020|0032").split("\\")]
        z = float(scan.world_to_voxel(position)[0])
        if abs(z - round(z)) > 0.1 or not 0 <= round(z) < scan.shape[0]:
            raise GeometryError(
                f"{file}: slice position {position} mm is not on a slice of {scan.seriesuid} "
                f"(fractional index z={z:.2f}); read the scan from this same series"
            )
        lookup[reader.GetMetaData("0008|0018").strip()] = round(z)
    return lookup


def _roi_slice(roi: LidcRoi, scan: Scan, sop_to_z: Mapping[str, int] | None, path: Path) -> int:
    if sop_to_z is not None:
        if roi.sop_uid not in sop_to_z:
            raise LidcAnnotationError(
                f"{path}: an outline names SOP Instance UID {roi.sop_uid} (z = {roi.z_mm} mm), "
                f"which is not a slice of the series read ({len(sop_to_z)} slices); is this the "
                "XML of another series?"
            )
        return sop_to_z[roi.sop_uid]
    # no DICOM headers at hand (a LUNA16 .mhd): the slice whose world z is the ROI's
    first = scan.voxel_to_world([0, 0, 0])
    z = float(scan.world_to_voxel([first[0], first[1], roi.z_mm])[0])
    if abs(z - round(z)) > 0.25 or not 0 <= round(z) < scan.shape[0]:
        raise LidcAnnotationError(
            f"{path}: an outline at z = {roi.z_mm} mm is not on a slice of {scan.seriesuid} "
            f"(fractional index {z:.2f} of {scan.shape[0]}); is this the XML of another series?"
        )
    return round(z)


def _fill(points_xy: np.ndarray, shape_yx: tuple[int, int]) -> np.ndarray:
    """The pixels inside an outline, the outline itself excluded (LIDC's instruction to readers
    was to draw just outside the nodule); a tiny outline with no inside keeps its own pixels."""
    from PIL import Image, ImageDraw

    xy = [(int(x), int(y)) for x, y in points_xy]
    inside = Image.new("1", (shape_yx[1], shape_yx[0]), 0)
    ImageDraw.Draw(inside).polygon(xy, fill=1, outline=1)
    outline = Image.new("1", (shape_yx[1], shape_yx[0]), 0)
    ImageDraw.Draw(outline).line([*xy, xy[0]], fill=1)
    filled, edge = np.asarray(inside, dtype=bool), np.asarray(outline, dtype=bool)
    interior = filled & ~edge
    return interior if interior.any() else filled


@dataclass
class _Raster:
    mark: LidcMark
    voxels_zyx: np.ndarray  # (k, 3) int indices (outlined) or (1..n, 3) points
    centre_xyz_mm: np.ndarray


def _rasterise(
    mark: LidcMark, scan: Scan, sop_to_z: Mapping[str, int] | None, path: Path
) -> _Raster:
    shape_yx = scan.shape[1:]
    if not mark.is_outlined:
        idx = [
            (_roi_slice(r, scan, sop_to_z, path), int(y), int(x))
            for r in mark.rois
            for x, y in r.points_xy
        ]
        vox = np.asarray(idx, dtype=np.int64).reshape(-1, 3)
        return _Raster(mark, vox, scan.voxel_to_world(vox.mean(axis=0)))
    per_slice: dict[int, np.ndarray] = {}
    for roi in sorted(mark.rois, key=lambda r: not r.inclusion):  # holes after fills
        z = _roi_slice(roi, scan, sop_to_z, path)
        filled = _fill(roi.points_xy, shape_yx)
        current = per_slice.get(z, np.zeros(shape_yx, dtype=bool))
        per_slice[z] = (current | filled) if roi.inclusion else (current & ~filled)
    parts = [
        np.column_stack([np.full(len(yx), z), yx])
        for z, m in per_slice.items()
        if len(yx := np.argwhere(m))
    ]
    vox = np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.int64)
    if not len(vox):
        raise LidcAnnotationError(
            f"{path}: reader {mark.reader}'s nodule {mark.mark_id!r} fills no voxel"
        )
    return _Raster(mark, vox, scan.voxel_to_world(vox.mean(axis=0)))


@dataclass(frozen=True)
class LidcNodule:
    """The readers' marks that are one finding, with the consensus of their outlines.

    Attributes
    ----------
    marks : tuple of LidcMark
        The marks grouped into this finding (at most one per reader, normally).
    kind : str
        "nodule" when at least one reader outlined it, else "small nodule" or "non-nodule".
    n_readers : int
        How many different readers marked it (any kind of mark).
    n_outlined : int
        How many readers outlined it (the denominator of the agreement level).
    consensus_zyx : ndarray (k, 3)
        Voxel indices inside the consensus mask (empty for point-only findings).
    agreement_zyx : ndarray (k,)
        For every voxel of the union of outlines, how many readers include it
        (``union_zyx`` holds the voxels).
    """

    seriesuid: str
    marks: tuple[LidcMark, ...]
    kind: str
    n_readers: int
    n_outlined: int
    center_xyz_mm: tuple[float, float, float]
    diameter_mm: float
    volume_mm3: float
    union_zyx: np.ndarray = field(repr=False)
    agreement: np.ndarray = field(repr=False)
    level: float = 0.5

    @property
    def consensus_zyx(self) -> np.ndarray:
        if not self.n_outlined:
            return np.zeros((0, 3), dtype=np.int64)
        return self.union_zyx[self.agreement >= self.level * self.n_outlined]

    def mask(self, scan: Scan, *, level: float | None = None) -> np.ndarray:
        """The consensus mask on ``scan``'s grid, bool ``(z, y, x)``."""
        out = np.zeros(scan.shape, dtype=bool)
        level = self.level if level is None else level
        if self.n_outlined:
            keep = self.union_zyx[self.agreement >= level * self.n_outlined]
            out[tuple(keep.T)] = True
        return out


def _group(rasters: list[_Raster], spacing_zyx: np.ndarray, tolerance_mm: float) -> list[list[int]]:
    """Single-linkage grouping: overlapping marks, or marks within ``tolerance_mm``."""
    n = len(rasters)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    sets = [{tuple(v) for v in r.voxels_zyx} for r in rasters]
    for i in range(n):
        for j in range(i + 1, n):
            if rasters[i].mark.reader == rasters[j].mark.reader:
                continue
            if sets[i] & sets[j]:
                parent[find(i)] = find(j)
                continue
            a = rasters[i].voxels_zyx * spacing_zyx
            b = rasters[j].voxels_zyx * spacing_zyx
            if len(a) * len(b) > 4_000_000:  # large outlines: compare their centres first
                gap = np.linalg.norm(rasters[i].centre_xyz_mm - rasters[j].centre_xyz_mm)
                if gap > 60:
                    continue
            d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).min()
            if d <= tolerance_mm:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: min(g))


def consensus_nodules(
    reading: LidcReading,
    scan: Scan,
    *,
    series_dir: str | Path | None = None,
    slices: Mapping[str, int] | None = None,
    level: float = 0.5,
    tolerance_mm: float | None = None,
    include_non_nodules: bool = False,
) -> list[LidcNodule]:
    """Group the readers' marks into findings and build each one's consensus.

    Parameters
    ----------
    reading : LidcReading
        From `read_lidc_xml`.
    scan : Scan
        The series the XML belongs to (from the DICOM folder or LUNA16's ``.mhd``).
    series_dir : path, optional
        The DICOM folder: outlines are then matched to slices by SOP Instance UID (and an
        unknown UID is an error). Without it they are matched by z position.
    slices : mapping, optional
        SOP Instance UID -> slice index, when already known (`slice_lookup` makes one).
    level : float
        Agreement level of the consensus (0.5: a voxel in at least half the outlines).
    tolerance_mm : float, optional
        Marks of different readers closer than this are one finding (default: the largest
        voxel spacing, so marks on neighbouring slices join).
    include_non_nodules : bool
        Also group the readers' non-nodule marks (off: only nodules, as LUNA16 counts them).

    Returns
    -------
    list of LidcNodule
        Sorted by how many readers marked them, then by size.
    """
    if not 0 < level <= 1:
        raise ValueError(f"level must be in (0, 1], not {level}")
    sop_to_z = dict(slices) if slices is not None else None
    if series_dir is not None and sop_to_z is None:
        sop_to_z = slice_lookup(series_dir, scan)
    marks = [m for m in reading.marks if include_non_nodules or m.kind != "non-nodule"]
    rasters = [_rasterise(m, scan, sop_to_z, reading.path) for m in marks]
    spacing_zyx = np.asarray(scan.spacing[::-1], dtype=float)
    tol = float(spacing_zyx.max()) if tolerance_mm is None else float(tolerance_mm)
    nodules = []
    for group in _group(rasters, spacing_zyx, tol):
        nodules.append(_nodule(reading, scan, [rasters[i] for i in group], level, spacing_zyx))
    nodules.sort(key=lambda n: (-n.n_readers, -n.diameter_mm))
    return nodules


def _nodule(
    reading: LidcReading, scan: Scan, group: list[_Raster], level: float, spacing_zyx: np.ndarray
) -> LidcNodule:
    readers = {r.mark.reader for r in group}
    outlined = [r for r in group if r.mark.is_outlined]
    voxel_mm3 = float(np.prod(spacing_zyx))
    kinds = {r.mark.kind for r in group}
    kind = "nodule" if outlined else ("small nodule" if "small nodule" in kinds else "non-nodule")
    if outlined:
        union, counts = np.unique(
            np.concatenate([r.voxels_zyx for r in outlined]), axis=0, return_counts=True
        )
        consensus = union[counts >= level * len(outlined)]
        if not len(consensus):  # readers that do not overlap at this level: fall back to union
            consensus = union
        centre = scan.voxel_to_world(consensus.mean(axis=0))
        volume = len(consensus) * voxel_mm3
        # the consensus mask's volume-equivalent sphere diameter: on LIDC-IDRI-0001 it gives
        # 23.40 mm where LUNA16's annotations.csv says 23.35 mm (the readers' mean: 23.11 mm)
        diameter = _equivalent_diameter(volume)
    else:
        union = np.zeros((0, 3), dtype=np.int64)
        counts = np.zeros(0, dtype=np.int64)
        centre = np.mean([r.centre_xyz_mm for r in group], axis=0)
        volume = 0.0
        diameter = 0.0
    return LidcNodule(
        seriesuid=reading.seriesuid or scan.seriesuid,
        marks=tuple(r.mark for r in group),
        kind=kind,
        n_readers=len(readers),
        n_outlined=len({r.mark.reader for r in outlined}),
        center_xyz_mm=tuple(float(v) for v in centre),  # type: ignore[arg-type]
        diameter_mm=diameter,
        volume_mm3=volume,
        union_zyx=union,
        agreement=counts,
        level=level,
    )


def _equivalent_diameter(volume_mm3: float) -> float:
    return float((6.0 * volume_mm3 / math.pi) ** (1.0 / 3.0))


def lidc_annotations_table(
    nodules: Sequence[LidcNodule], *, min_readers: int = 1, min_diameter_mm: float = 3.0
) -> pd.DataFrame:
    """A LUNA16-style table of consensus nodules: ``seriesuid, coordX, coordY, coordZ,
    diameter_mm`` plus ``n_readers``, ``volume_mm3`` and the readers' mean ratings.

    ``min_readers=3`` rebuilds LUNA16's rule (nodules >= 3 mm marked by at least 3 of the 4
    readers); outlined nodules under ``min_diameter_mm`` and point-only findings are left out.
    """
    rows = []
    for n in nodules:
        if n.kind != "nodule" or n.n_readers < min_readers or n.diameter_mm < min_diameter_mm:
            continue
        row: dict[str, object] = {
            "seriesuid": n.seriesuid,
            "coordX": n.center_xyz_mm[0],
            "coordY": n.center_xyz_mm[1],
            "coordZ": n.center_xyz_mm[2],
            "diameter_mm": n.diameter_mm,
            "n_readers": n.n_readers,
            "volume_mm3": n.volume_mm3,
        }
        for name in CHARACTERISTICS:
            values = [m.characteristics[name] for m in n.marks if name in m.characteristics]
            row[name] = float(np.mean(values)) if values else np.nan
        rows.append(row)
    columns = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "n_readers", "volume_mm3"]
    return pd.DataFrame(rows, columns=columns + list(CHARACTERISTICS))


def lidc_annotations(
    series_dir: str | Path,
    *,
    xml: str | Path | None = None,
    level: float = 0.5,
    min_readers: int = 1,
) -> pd.DataFrame:
    """Read a DICOM series and its LIDC XML; return its consensus nodules as a LUNA16 table.

    ``min_readers=3`` applies LUNA16's rule. The table holds no patient identifier (the
    series UID is LUNA16's own key).

    Examples
    --------
    >>> lidc_annotations("LIDC-IDRI-0001", min_readers=3)  # doctest: +SKIP
    """
    from nodulekit.data.io import read_scan

    series_dir = Path(series_dir)
    reading = read_lidc_xml(xml if xml is not None else find_lidc_xml(series_dir))
    scan = read_scan(series_dir, reading.seriesuid or None)
    nodules = consensus_nodules(reading, scan, series_dir=series_dir, level=level)
    return lidc_annotations_table(nodules, min_readers=min_readers)
