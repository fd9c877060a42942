"""`attribute`: every method's shape and promises, Grad-CAM pinned to Captum, bad input refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nodulekit.errors import GeometryError
from nodulekit.explain import air_value, attribute, available_methods
from nodulekit.models import build_model

FAST = {"occlusion": {"window_vox": 4, "stride_vox": 4}, "smoothgrad": {"nt_samples": 4}}
FAST["integrated_gradients"] = {"n_steps": 8}


def gradcam_by_captum(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The reference: Captum's LayerGradCam (ReLU) on last_conv, trilinear upsampling."""
    from captum.attr import LayerAttribution, LayerGradCam

    model.eval()
    cam = LayerGradCam(model, model.last_conv).attribute(
        x.clone().requires_grad_(True), relu_attributions=True
    )
    up = LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="trilinear")
    return up.detach()[:, 0].numpy()


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.parametrize("method", available_methods())
def test_every_method_maps_the_crop_and_leaves_the_model_as_it_was(toy, method):
    model = toy.model
    model.train()  # the caller's mode must come back
    flags = [p.requires_grad for p in model.parameters()]
    attribution = attribute(model, toy.test.x[:3], method, **FAST.get(method, {}))
    assert attribution.maps.shape == (3, 16, 16, 16)
    assert attribution.maps.dtype == np.float32
    assert np.isfinite(attribution.maps).all() and np.abs(attribution.maps).max() > 0
    assert attribution.method == method and len(attribution) == 3
    if not attribution.signed:
        assert attribution.maps.min() >= 0
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == flags
    model.eval()
    with torch.no_grad():
        expected = model(toy.test.x[:3]).numpy()
    np.testing.assert_allclose(attribution.logits, expected, rtol=1e-5, atol=1e-6)


def test_gradcam_equals_captum_layergradcam_upsampled_trilinearly(toy):
    x = toy.test.x[:6]
    ours = attribute(toy.model, x, "gradcam", batch_size=4).maps
    reference = gradcam_by_captum(toy.model, x)
    assert pearson(ours, reference) >= 0.99
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-9)


def test_a_named_layer_is_the_same_as_last_conv(toy):
    named = attribute(toy.model, toy.test.x[:2], "gradcam", target_layer="blocks.1.3")
    default = attribute(toy.model, toy.test.x[:2], "gradcam")
    assert named.layer == default.layer == "blocks.1.3"
    np.testing.assert_array_equal(named.maps, default.maps)


def test_integrated_gradients_add_up_to_the_logit_gain_over_air(toy):
    """Completeness: the map sums to logit(x) - logit(all air) (baseline -1000 HU = 0.0)."""
    x = toy.test.x[:4]
    attribution = attribute(toy.model, x, "integrated_gradients", n_steps=100)
    with torch.no_grad():
        gain = toy.model(x) - toy.model(torch.full_like(x, air_value()))
    assert air_value() == 0.0
    np.testing.assert_allclose(attribution.maps.sum(axis=(1, 2, 3)), gain.numpy(), rtol=0.05)


def test_occlusion_with_one_window_is_the_logit_drop_when_the_crop_becomes_air(toy):
    x = toy.test.x[:2]
    attribution = attribute(toy.model, x, "occlusion", window_vox=16, stride_vox=16)
    with torch.no_grad():
        drop = (toy.model(x) - toy.model(torch.zeros_like(x))).numpy()
    np.testing.assert_allclose(attribution.maps[:, 5, 7, 9], drop, rtol=1e-4)
    np.testing.assert_allclose(attribution.maps.std(axis=(1, 2, 3)), 0, atol=1e-6)


def test_saliency_is_the_absolute_gradient(toy):
    x = toy.test.x[:2].clone().requires_grad_(True)
    toy.model.eval()
    (grad,) = torch.autograd.grad(toy.model(x).sum(), x)
    attribution = attribute(toy.model, toy.test.x[:2], "saliency")
    np.testing.assert_allclose(attribution.maps, grad.abs()[:, 0].numpy(), rtol=1e-5, atol=1e-9)


def test_smoothgrad_is_seeded():
    model = build_model("cnn", channels=(2, 4))
    x = torch.rand(1, 1, 8, 8, 8)
    a = attribute(model, x, "smoothgrad", nt_samples=3, seed=1).maps
    b = attribute(model, x, "smoothgrad", nt_samples=3, seed=1).maps
    np.testing.assert_array_equal(a, b)


def test_an_unknown_method_is_refused_with_the_list():
    with pytest.raises(ValueError, match="available: gradcam, guided_gradcam, integrated_gradi"):
        attribute(build_model("cnn", channels=(2, 4)), torch.rand(1, 1, 8, 8, 8), "lime")


def test_an_unknown_option_is_refused_with_the_accepted_ones():
    with pytest.raises(TypeError, match=r"accepts the options \['n_steps'\], not \['steps'\]"):
        attribute(
            build_model("cnn", channels=(2, 4)),
            torch.rand(1, 1, 8, 8, 8),
            "integrated_gradients",
            steps=3,
        )


def test_a_model_without_last_conv_is_told_to_pass_target_layer():
    model = nn.Sequential(nn.Conv3d(1, 2, 3), nn.Flatten(), nn.LazyLinear(1), nn.Flatten(0))
    x = torch.rand(2, 1, 6, 6, 6)
    model(x)
    with pytest.raises(ValueError, match=r"no `last_conv`.*pass target_layer=.*\['0'\]"):
        attribute(model, x, "gradcam")
    assert attribute(model, x, "gradcam", target_layer="0").maps.shape == (2, 6, 6, 6)
    assert attribute(model, x, "saliency").maps.shape == (2, 6, 6, 6)  # needs no layer


@pytest.mark.parametrize(
    "shape", [(16, 16, 16), (1, 16, 16, 16), (2, 2, 16, 16, 16), (0, 1, 16, 16, 16)]
)
def test_a_batch_of_the_wrong_rank_is_refused_naming_its_shape(shape):
    with pytest.raises(GeometryError, match=r"x has shape \(.*(\(N, 1, D, H, W\)|no crops)"):
        attribute(build_model("cnn", channels=(2, 4)), torch.rand(*shape))


def test_crops_of_another_shape_than_the_checkpoint_are_refused_naming_both():
    model = build_model("cnn", channels=(2, 4))
    with pytest.raises(GeometryError, match=r"\(16, 16, 16\).*trained on crops of shape \(24, 2"):
        attribute(model, torch.rand(1, 1, 16, 16, 16), crop_shape=(24, 24, 24))


def test_a_double_precision_model_is_explained_in_its_own_dtype():
    model = build_model("cnn", channels=(2, 4)).double()
    attribution = attribute(model, torch.rand(2, 1, 8, 8, 8), "gradcam")
    assert attribution.maps.dtype == np.float32 and attribution.maps.shape == (2, 8, 8, 8)


def test_maps_paste_back_into_the_scan_where_the_crop_was_cut():
    from nodulekit.data import Scan
    from nodulekit.preprocess import crop, normalize_hu

    array = np.full((30, 40, 40), -900, dtype=np.int16)
    array[12:18, 18:24, 20:26] = 50
    scan = Scan(array, origin=(-20.0, -20.0, -30.0), spacing=(1.0, 1.0, 2.0))
    centre = scan.voxel_to_world(np.array([15.0, 21.0, 23.0]))
    cut = crop(scan, centre, size_mm=16.0, shape_zyx=(8, 8, 8))
    x = torch.from_numpy(normalize_hu(cut.array))[None, None]
    attribution = attribute(build_model("cnn", channels=(2, 4)), x, "saliency", crops=[cut])
    pasted = attribution.paste_into(0, scan)
    assert pasted.shape == scan.shape
    inside = np.argwhere(pasted > 0)
    assert inside.min(axis=0).tolist() >= [10, 12, 14] and inside.max(axis=0).tolist() <= [
        20,
        30,
        32,
    ]
    with pytest.raises(GeometryError, match=r"spans \(16.0, 16.0, 16.0\) mm .* trained on 32.0 mm"):
        attribute(build_model("cnn", channels=(2, 4)), x, crops=[cut], crop_size_mm=32.0)
    with pytest.raises(GeometryError, match=r"crops\[0\] has shape \(8, 8, 8\)"):
        attribute(build_model("cnn", channels=(2, 4)), torch.rand(1, 1, 6, 6, 6), crops=[cut])


@pytest.mark.sample
def test_gradcam_equals_captum_on_real_crops_of_the_sample_scan(sample_dir):
    from nodulekit.data import read_scan
    from nodulekit.preprocess import crop, normalize_hu

    luna = sample_dir / "luna16-mini"
    scan = read_scan(next((luna / "subset0").glob("*.mhd")))
    centres = [(56.2, 86.3, -115.9), (-60.0, 0.0, -150.0), (80.0, -20.0, -200.0)]
    crops = [crop(scan, c, size_mm=32.0, shape_zyx=(24, 24, 24)) for c in centres]
    x = torch.from_numpy(np.stack([normalize_hu(c.array) for c in crops]))[:, None]
    torch.manual_seed(0)
    model = build_model("cnn", channels=(4, 8, 16)).eval()
    attribution = attribute(model, x, "gradcam", crops=crops, crop_shape=(24, 24, 24))
    assert pearson(attribution.maps, gradcam_by_captum(model, x)) >= 0.99
    assert attribution.paste_into(0, scan).shape == scan.shape
