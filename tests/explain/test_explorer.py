"""`CandidateExplanations` and `region_layers`: checkpoint geometry, lazy scoring, cheap masks."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from nodulekit.data import Scan
from nodulekit.errors import GeometryError
from nodulekit.explain import CandidateExplanations
from nodulekit.explain.explorer import nifti_bytes, region_layers, sphere_mask
from nodulekit.models import build_model
from nodulekit.preprocess import crop
from tests.train.conftest import make_fake_cache


class CountingModel(torch.nn.Module):
    """A model that counts the crops it has scored."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = build_model("cnn", channels=(2, 4))
        self.last_conv = self.inner.last_conv
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += int(x.shape[0])
        return self.inner(x)


def test_a_checkpoint_trained_on_other_crops_is_not_explained_on_these(tmp_path):
    from nodulekit.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_model("cnn", channels=(2, 4))
    config = {"model": "cnn", "model_options": {"channels": [2, 4]}, "crop_size_mm": 32.0,
              "crop_shape": [24, 24, 24]}  # fmt: skip
    path = save_checkpoint(tmp_path / "model.pt", model=model, epoch=1, config=config)
    cache = make_fake_cache(n_series=1, per_series=3, size=16)  # 16^3 crops, not 24^3
    table = cache.index.assign(probability=[0.9, 0.5, 0.1])
    explanations = CandidateExplanations.from_checkpoint(path, table, crops=cache.crops)
    assert explanations.crop_shape == (24, 24, 24) and explanations.crop_size_mm == 32.0
    assert (explanations.size_mm, explanations.shape_zyx) == (32.0, (24, 24, 24))
    with pytest.raises(GeometryError, match=r"\(16, 16, 16\).*\(24, 24, 24\)"):
        explanations.attribution(0, "saliency")
    with pytest.raises(GeometryError, match=r"\(16, 16, 16\).*\(24, 24, 24\)"):
        explanations.precompute("saliency")
    # the checkpoint's own geometry is explained
    same = make_fake_cache(n_series=1, per_series=2, size=24)
    ok = CandidateExplanations.from_checkpoint(
        path, same.index.assign(probability=[0.4, 0.6]), crops=same.crops
    )
    assert ok.attribution(0, "saliency").maps.shape == (1, 24, 24, 24)


def test_cut_crops_of_another_size_are_refused_by_the_checkpoint_config(tmp_path):
    array = np.full((40, 60, 60), -900, np.int16)
    scan = Scan(array, origin=(0.0, 0.0, 0.0), spacing=(1.0, 1.0, 1.0))
    explanations = CandidateExplanations(
        build_model("cnn", channels=(2, 4)),
        pd.DataFrame(
            {
                "seriesuid": ["s"],
                "coordX": [30.0],
                "coordY": [30.0],
                "coordZ": [20.0],
                "probability": [0.5],
            }
        ),
        crops=np.zeros((1, 24, 24, 24), np.int16),
        config={"crop_size_mm": 32.0, "crop_shape": [24, 24, 24]},
        size_mm=40.0,
    )
    explanations._cut[0] = crop(scan, (30.0, 30.0, 20.0), 40.0, (24, 24, 24))
    with pytest.raises(GeometryError, match=r"trained on 32.0 mm"):
        explanations.attribution(0, "saliency")


def test_a_cache_with_probabilities_is_not_scored_and_a_huge_one_is_refused():
    cache = make_fake_cache(n_series=2, per_series=6, size=16)
    model = CountingModel()
    with_p = SimpleNamespace(
        index=cache.index.assign(probability=np.linspace(0, 1, 12)), crops=cache.crops
    )
    explanations = CandidateExplanations.from_cache(model, with_p)
    assert model.seen == 0 and explanations.table["row"].iloc[0] == 11
    given = CandidateExplanations.from_cache(model, cache, probabilities=np.linspace(1, 0, 12))
    assert model.seen == 0 and given.table["row"].iloc[0] == 0
    with pytest.raises(ValueError, match=r"12 rows and no probability column.*max_scored=10"):
        CandidateExplanations.from_cache(model, cache, max_scored=10)
    assert model.seen == 0


def test_only_the_rows_asked_for_are_scored_and_shown():
    cache = make_fake_cache(n_series=2, per_series=6, size=16)
    model = CountingModel()
    explanations = CandidateExplanations.from_cache(model, cache, rows=[3, 7, 9])
    assert model.seen == 3 and len(explanations) == 3
    assert sorted(explanations.table["row"]) == [3, 7, 9]
    top = int(explanations.table["row"].iloc[0])
    np.testing.assert_array_equal(explanations.crop_hu(0), cache.crops[top])
    assert explanations.table["seriesuid"].iloc[0] == cache.index["seriesuid"].iloc[top]


def _brute_mask(grid, nodules):
    world = grid.voxel_to_world(np.indices(grid.shape, dtype=float).reshape(3, -1).T)
    inside = np.zeros(len(world), bool)
    for _, row in nodules.iterrows():
        centre = row[["coordX", "coordY", "coordZ"]].to_numpy(float)
        inside |= np.linalg.norm(world - centre, axis=1) <= row["diameter_mm"] / 2
    return inside.reshape(grid.shape).astype(np.uint8)


def test_nodule_spheres_of_a_whole_scan_touch_only_their_boxes(monkeypatch):
    array = np.full((30, 50, 40), -900, np.int16)
    scan = Scan(array, origin=(-5.0, 3.0, 10.0), spacing=(0.8, 0.8, 2.0),
                direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))  # fmt: skip
    nodules = pd.DataFrame(
        {
            "coordX": [-20.0, -5.0, 500.0],
            "coordY": [-15.0, -30.0, 0.0],
            "coordZ": [30.0, 60.0, 0.0],
            "diameter_mm": [6.0, 9.0, 10.0],
        }
    )  # fmt: skip  (the third lies outside the scan)
    expected = _brute_mask(scan, nodules)
    assert expected.sum() > 100
    largest = []
    original = Scan.voxel_to_world

    def counting(self, index_zyx):
        largest.append(np.asarray(index_zyx).reshape(-1, 3).shape[0])
        return original(self, index_zyx)

    monkeypatch.setattr(Scan, "voxel_to_world", counting)
    layers = region_layers(scan, center_xyz_mm=(0, 0, 0), region_mm=None, nodules=nodules)
    np.testing.assert_array_equal(layers["nodules"], expected)
    assert max(largest) < 2000 < array.size  # boxes of ~11^3 and ~14^3 voxels, not the scan


def test_region_ct_is_rounded_not_truncated_toward_zero():
    ramp = -np.arange(60, dtype=np.int16)  # HU falls by 1 per voxel along x
    scan = Scan(np.broadcast_to(ramp, (40, 60, 60)).copy(), origin=(0.0, 0.0, 0.0),
                spacing=(1.0, 1.0, 1.0))  # fmt: skip
    centre = (30.25, 30.0, 20.0)  # x a quarter voxel off: HU -k.75 along x
    layers = region_layers(scan, center_xyz_mm=centre, region_mm=10.0)
    exact = crop(scan, centre, 10.0, (10, 10, 10)).array
    assert np.abs(exact - np.rint(exact)).max() > 0.2  # fractional HU to round
    np.testing.assert_array_equal(layers["ct"].array, np.rint(exact).astype(np.int16))


def test_sphere_mask_on_a_crop_and_nifti_bytes_live_in_the_explain_layer():
    scan = Scan(np.zeros((20, 20, 20), np.int16), origin=(0.0, 0.0, 0.0), spacing=(1.0,) * 3)
    cut = crop(scan, (10.0, 10.0, 10.0), 16.0, (8, 8, 8))
    nodules = pd.DataFrame({"coordX": [10.0], "coordY": [10.0], "coordZ": [10.0],
                            "diameter_mm": [8.0]})  # fmt: skip
    np.testing.assert_array_equal(sphere_mask(cut, nodules), _brute_mask(cut, nodules))
    data = nifti_bytes(np.zeros((2, 2, 2), np.float32), scan)
    assert data[344:348] == b"n+1\0"


def test_the_widget_composes_and_holds_no_file_logic():
    import inspect

    import nodulekit.widgets.explain_explorer as widget_module

    assert "tempfile" not in inspect.getsource(widget_module)
    assert widget_module.nifti_bytes is nifti_bytes
