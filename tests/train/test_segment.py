"""Segmentation data: masks on the scan's grid (or spheres), 2.5D patches, inference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from nodulekit.data import Luna16, Scan
from nodulekit.data.synthetic import make_synthetic_luna16
from nodulekit.errors import GeometryError
from nodulekit.models.unet import NoduleUNet
from nodulekit.train.segment import (
    build_segmentation_patches,
    nodule_labels,
    predict_volume,
    sphere_masks,
)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return make_synthetic_luna16(
        tmp_path_factory.mktemp("seg") / "data", n_scans=2, size="tiny", seed=3
    )


def test_sphere_fallback_by_hand():
    array = np.full((5, 9, 9), 40, np.int16)
    array[:, 0, :] = -900  # lung air inside the sphere's reach is left out
    scan = Scan(array, origin=(0, 0, 0), spacing=(1, 1, 2))
    table = pd.DataFrame({"coordX": [4.0], "coordY": [1.0], "coordZ": [4.0], "diameter_mm": [4.0]})
    labels = sphere_masks(scan, table)
    # radius 2 mm around (x 4, y 1, z 4 mm = slice 2): slices 1..3 (z 2, 4, 6 mm)
    assert set(np.unique(np.nonzero(labels)[0])) == {1, 2, 3}
    assert labels[:, 0, :].sum() == 0  # air excluded
    assert labels[2, 1, 4] == 1 and labels[2, 1, 7] == 0


def test_mask_on_another_grid_is_refused(tiny_root, tmp_path):
    import shutil

    import SimpleITK as sitk

    luna = Luna16(tiny_root, warn_missing=False)
    uid = luna.scans.seriesuid[0]
    labels, source = nodule_labels(luna, uid)
    assert source == "mask" and labels.max() == len(luna.annotations_for(uid))
    copy = tmp_path / "copy"
    shutil.copytree(tiny_root, copy)
    path = copy / "seg-nodules-synthetic" / f"{uid}.mhd"
    image = sitk.ReadImage(str(path))
    image.SetSpacing([s * 2 for s in image.GetSpacing()])
    sitk.WriteImage(image, str(path))
    with pytest.raises(GeometryError, match="never resampled silently"):
        nodule_labels(Luna16(copy, warn_missing=False), uid)


def test_patches_over_represent_nodules(tiny_root):
    luna = Luna16(tiny_root, warn_missing=False)
    uids = list(luna.scans.seriesuid)
    patches = build_segmentation_patches(tiny_root, uids, size_px=32, seed=0)
    image, target, _ = patches[0]
    assert image.shape == (5, 32, 32) and target.shape == (1, 32, 32)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert set(np.unique(patches.targets)) <= {0.0, 1.0}
    assert patches.positive_fraction >= 0.5  # every nodule slice, then as many random ones


def test_predict_volume_fills_only_the_asked_region(tiny_root):
    luna = Luna16(tiny_root, warn_missing=False)
    scan = luna.load(luna.scans.seriesuid[0])
    torch.manual_seed(0)
    net = NoduleUNet(dims=2, channels=(4, 8))
    prob = predict_volume(net, scan, z_range=(2, 5), box_yx=(slice(3, 20), slice(0, 30)))
    assert prob.shape == scan.shape
    assert prob[:2].max() == 0 and prob[5:].max() == 0 and prob[:, :3].max() == 0
    assert (prob[2:5, 3:20, :30] > 0).all()


def test_a_z_range_is_predicted_as_in_the_whole_scan():
    """The 2.5D net sees each slice with its neighbours: predicting slices 0-4 or 7-11 alone
    gives what predicting the whole scan gives there (the edges repeat the first slice)."""
    import torch

    from nodulekit.data import Scan
    from nodulekit.models import build_model
    from nodulekit.train.segment import predict_volume

    rng = np.random.default_rng(0)
    scan = Scan(array=rng.integers(-1000, 400, (20, 32, 32)).astype(np.int16),
                origin=(0, 0, 0), spacing=(1, 1, 2), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))  # fmt: skip
    torch.manual_seed(0)
    model = build_model("unet")
    whole = predict_volume(model, scan)
    for z0, z1 in [(0, 5), (7, 12), (17, 20)]:
        part = predict_volume(model, scan, z_range=(z0, z1))
        np.testing.assert_allclose(part[z0:z1], whole[z0:z1], atol=1e-6)
        assert not part[:z0].any() and not part[z1:].any()
