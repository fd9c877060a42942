import time

import numpy as np
import pytest

from nodulekit.data import Mask, Scan, read_scan
from nodulekit.errors import GeometryError
from nodulekit.preprocess import lung_mask, lung_volume_ml
from tests.conftest import SAMPLE_UID
from tests.preprocess._phantom import chest_phantom, dice


@pytest.fixture(scope="module")
def phantom():
    scan, truth = chest_phantom()
    return scan, truth, lung_mask(scan)


def test_phantom_lungs_match_truth(phantom):
    scan, truth, mask = phantom
    assert isinstance(mask, Mask) and mask.dtype == bool and mask.shape == scan.shape
    assert mask.same_geometry(scan) and mask.name == "lungs"
    assert np.asarray(mask) is mask.array  # bare-array code keeps working
    assert dice(mask, truth["lungs"]) >= 0.95


def test_vessels_and_nodule_inside_stomach_and_trachea_outside(phantom):
    scan, truth, mask = phantom
    assert mask[truth["nodule"]].all()
    vessels = truth["lungs"] & (scan.array > -320)
    assert vessels.any() and mask[vessels].mean() > 0.97  # rods reaching the apex: 0.987
    assert not mask[truth["stomach"]].any()
    # the trachea above the lungs is air inside the body, yet not lung
    top = np.nonzero(truth["lungs"].any(axis=(1, 2)))[0].max()
    trachea = truth["airway"].copy()
    trachea[: top + 1] = False
    assert trachea.any() and not mask[trachea].any()
    # most of the airway tree is gone, bronchi included
    assert mask[truth["airway"]].mean() < 0.15


def test_joined_lungs_are_kept_whole():
    scan, truth = chest_phantom()
    array = scan.array.copy()
    _, ny, nx = scan.shape
    body_mid = np.zeros(scan.shape, bool)  # lung tissue joining both lungs in front
    body_mid[12:20, ny // 2 - 20 : ny // 2 - 14, nx // 4 : 3 * nx // 4] = True
    array[body_mid] = -850
    mask = lung_mask(scan.with_array(array))
    assert dice(mask, truth["lungs"] | body_mid) >= 0.95


def test_no_lungs_gives_an_empty_mask():
    scan = Scan(np.full((4, 16, 16), 40, np.int16), (0, 0, 0), (1, 1, 1))
    assert not lung_mask(scan).any()


def test_lung_volume_ml():
    scan = Scan(np.zeros((4, 10, 10), np.int16), (0, 0, 0), (2.0, 2.0, 5.0))
    mask = np.zeros(scan.shape, bool)
    mask[:2, :5, :5] = True  # 50 voxels of 20 mm3 = 1000 mm3 = 1 ml
    assert lung_volume_ml(mask, scan) == pytest.approx(1.0)  # a bare array needs the scan
    with pytest.raises(GeometryError, match="differs from scan shape"):
        lung_volume_ml(mask[:1], scan)
    with pytest.raises(GeometryError, match="a bare array has no voxel size"):
        lung_volume_ml(mask)
    # a Mask knows its voxel size; given with a scan, the grids must agree
    as_mask = Mask.like(scan, mask)
    assert lung_volume_ml(as_mask) == pytest.approx(1.0) == as_mask.volume_ml
    assert lung_volume_ml(as_mask, scan) == pytest.approx(1.0)
    shifted = Scan(scan.array, (0.0, 0.0, 2.5), scan.spacing)
    with pytest.raises(
        GeometryError,
        match=r"same physical space: Scan grid shape_zyx=\(4, 10, 10\).*origin_xyz_mm="
        r"\(0\.00, 0\.00, 2\.50\).*; Mask grid shape_zyx=\(4, 10, 10\).*\(0\.00, 0\.00, 0\.00\)",
    ):
        lung_volume_ml(as_mask, shifted)


@pytest.mark.sample
@pytest.mark.slow
def test_real_scan_lung_volume_is_adult(sample_dir):
    scan = read_scan(sample_dir / "luna16-mini" / "subset0" / f"{SAMPLE_UID}.mhd")
    start = time.perf_counter()
    mask = lung_mask(scan)
    seconds = time.perf_counter() - start
    volume = lung_volume_ml(mask)
    print(f"lung volume {volume:.0f} ml in {seconds:.1f} s")
    assert 3000 <= volume <= 8000  # measured: 3838 ml
    # the nodule of this scan (LUNA16 annotation, 23.4 mm) lies inside the mask
    assert mask[tuple(scan.world_to_index((56.2, 86.3, -115.9)))]


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    synthetic = pytest.importorskip("nodulekit.data.synthetic")
    out = tmp_path_factory.mktemp("synthetic") / "luna"
    return synthetic.make_synthetic_luna16(out, n_scans=3, seed=0, size="tiny", progress=False)


def test_synthetic_lungs_match_the_generator_mask(synthetic_root):
    scans = sorted(synthetic_root.glob("subset*/*.mhd"))
    assert len(scans) == 3
    for path in scans:
        scan = read_scan(path)
        labels = read_scan(synthetic_root / "seg-lungs-LUNA16" / path.name).array
        truth = (labels == 3) | (labels == 4)  # LUNA16 labels: 3 right, 4 left, 5 airways
        mask = lung_mask(scan)
        assert dice(mask, truth) >= 0.95, (
            path.name
        )  # measured 0.956-0.974 (tiny), 0.987-0.990 (small)
        assert mask[labels == 5].mean() < 0.5  # most of the airway tree is left out
