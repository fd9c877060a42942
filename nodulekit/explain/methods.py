"""One verb for every attribution method: `attribute(model, x, method=...)`, built on Captum.

``x`` is a batch of crops ``(N, 1, D, H, W)`` normalised the way the training data set
normalises them (`nodulekit.preprocess.normalize_hu`: -1000 HU (air) is 0.0, 400 HU is 1.0).
What is explained is the model's single **nodule logit**: a positive attribution pushes a voxel's
crop towards "nodule", a negative one away from it.

Every method returns maps with ``x``'s spatial shape ``(N, D, H, W)``, wrapped in an
`Attribution` that also carries each crop's geometry (`nodulekit.preprocess.Crop`) when given,
so that ``attribution.paste_into(i, scan)`` puts map ``i`` back on the scan's grid.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from nodulekit.data.scan import Scan
from nodulekit.errors import GeometryError
from nodulekit.preprocess.crop import Crop
from nodulekit.preprocess.window import normalize_hu
from nodulekit.train.loop import resolve_device


def air_value() -> float:
    """Air (-1000 HU) in model input units: ``normalize_hu(-1000)``, the baseline of every method."""
    return float(normalize_hu(np.array([-1000.0]))[0])


@dataclass(frozen=True)
class MethodInfo:
    """What a method shows and what it costs (forward/backward passes per crop)."""

    name: str
    signed: bool
    summary: str
    cost: str


#: name -> what it is; the order is the order the explorer lists them in.
METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        MethodInfo(
            "gradcam",
            False,
            "Grad-CAM: where the last convolution's evidence for 'nodule' lies (coarse, "
            "upsampled trilinearly to the crop)",
            "1 forward + 1 backward pass",
        ),
        MethodInfo(
            "guided_gradcam",
            True,
            "Guided Grad-CAM: Grad-CAM times guided backpropagation (sharp edges)",
            "2 forward + 2 backward passes",
        ),
        MethodInfo(
            "integrated_gradients",
            True,
            "Integrated gradients from an all-air crop (-1000 HU) to this crop",
            "n_steps (50) forward + backward passes",
        ),
        MethodInfo(
            "saliency",
            False,
            "Saliency: size of the logit's gradient at each voxel",
            "1 forward + 1 backward pass",
        ),
        MethodInfo(
            "smoothgrad",
            False,
            "SmoothGrad: saliency averaged over noisy copies of the crop",
            "nt_samples (16) forward + backward passes",
        ),
        MethodInfo(
            "occlusion",
            True,
            "Occlusion: drop in the logit when a cube of the crop is replaced with air",
            "one forward pass per window position: ((D - w) / s + 1)^3, 343 for 24^3 crops "
            "with window_vox=6, stride_vox=3",
        ),
    )
}


def available_methods() -> list[str]:
    """Names `attribute` accepts, in display order."""
    return list(METHODS)


@dataclass(frozen=True, eq=False)
class Attribution:
    """Attribution maps of a batch of crops.

    Attributes
    ----------
    maps : (N, D, H, W) ndarray of float32
        One map per crop, on the crop's voxel grid ``(z, y, x)``; zero means "no effect".
    method : str
        The method's name (a key of `METHODS`).
    signed : bool
        True when the map has both signs (positive: evidence for "nodule", negative: against).
    logits : (N,) ndarray of float32
        The model's nodule logit of each crop (``sigmoid`` gives the probability).
    crops : tuple of Crop, optional
        Each crop's geometry, for `paste_into`.
    layer : str, optional
        The layer Grad-CAM looked at (its name in ``model.named_modules()``).
    """

    maps: np.ndarray
    method: str
    signed: bool
    logits: np.ndarray
    crops: tuple[Crop, ...] | None = None
    layer: str | None = None

    def __len__(self) -> int:
        return int(self.maps.shape[0])

    @property
    def probabilities(self) -> np.ndarray:
        """Nodule probability of each crop (``sigmoid(logits)``)."""
        return (1.0 / (1.0 + np.exp(-self.logits.astype(np.float64)))).astype(np.float32)

    def paste_into(self, i: int, scan: Scan, *, fill: float = 0.0) -> np.ndarray:
        """Map ``i`` resampled onto ``scan``'s grid (float32, ``scan.shape``), via `Crop.paste_into`."""
        if self.crops is None:
            raise ValueError(
                "this Attribution has no crop geometry; pass crops=[Crop, ...] (the crops that "
                "x was made from) to attribute() to paste maps back into a scan"
            )
        return self.crops[i].paste_into(scan, self.maps[i], fill=fill)


# --------------------------------------------------------------------------- checks


def _check_batch(x: Any, crop_shape: Sequence[int] | None) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor or ndarray (N, 1, D, H, W), not {type(x)}")
    if x.ndim != 5 or x.shape[1] != 1:
        raise GeometryError(
            f"x has shape {tuple(x.shape)}; attribute needs a batch of one-channel crops "
            "(N, 1, D, H, W), e.g. x[None, None] for a single (D, H, W) crop"
        )
    if x.shape[0] == 0:
        raise GeometryError(
            f"x has shape {tuple(x.shape)}: a batch of no crops, nothing to explain"
        )
    if crop_shape is not None:
        expected = tuple(int(v) for v in crop_shape)
        if tuple(x.shape[2:]) != expected:
            raise GeometryError(
                f"x holds crops of shape {tuple(x.shape[2:])} (z, y, x) but the model was "
                f"trained on crops of shape {expected} (the checkpoint's crop_shape); cut the "
                f"crops with shape_zyx={expected}"
            )
    return x


def _check_crops(
    crops: Sequence[Crop] | None, x: torch.Tensor, crop_size_mm: float | None = None
) -> tuple[Crop, ...] | None:
    if crops is None:
        return None
    crops = tuple(crops)
    if crop_size_mm is not None:
        for i, c in enumerate(crops):
            size = tuple(round(s * n, 2) for s, n in zip(c.spacing, c.shape[::-1], strict=True))
            if not np.allclose(size, float(crop_size_mm), rtol=0.01):
                raise GeometryError(
                    f"crops[{i}] spans {size} mm (x, y, z) but the model was trained on "
                    f"{float(crop_size_mm)} mm crops (the checkpoint's crop_size_mm); cut them "
                    f"with size_mm={float(crop_size_mm)}"
                )
    if len(crops) != x.shape[0]:
        raise ValueError(f"got {len(crops)} crops for a batch of {x.shape[0]}; give one per crop")
    for i, c in enumerate(crops):
        if tuple(c.shape) != tuple(x.shape[2:]):
            raise GeometryError(
                f"crops[{i}] has shape {c.shape} but x's crops are {tuple(x.shape[2:])}; "
                "give the Crop objects that x was made from"
            )
    return crops


def resolve_layer(model: nn.Module, target_layer: str | nn.Module | None) -> tuple[nn.Module, str]:
    """The layer Grad-CAM looks at and its name: ``target_layer`` or ``model.last_conv``."""
    names = {module: name for name, module in model.named_modules()}
    if target_layer is None:
        layer = getattr(model, "last_conv", None)
        if not isinstance(layer, nn.Module):
            convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv3d)]
            hint = f"; its Conv3d layers are {convs[-4:]}" if convs else ""
            raise ValueError(
                f"{type(model).__name__} has no `last_conv` attribute, so Grad-CAM does not "
                f"know which layer to look at: pass target_layer=<name or module> (usually "
                f"the last Conv3d){hint}"
            )
    elif isinstance(target_layer, str):
        modules = dict(model.named_modules())
        if target_layer not in modules:
            raise ValueError(
                f"target_layer={target_layer!r} is not a layer of {type(model).__name__}; "
                f"names look like {[n for n in modules if n][:8]}"
            )
        layer = modules[target_layer]
    else:
        layer = target_layer
    if layer not in names:
        raise ValueError(f"target_layer {layer!r} is not a module of {type(model).__name__}")
    return layer, names[layer]


# --------------------------------------------------------------------------- model state


@contextlib.contextmanager
def explaining(model: nn.Module, device: torch.device) -> Iterator[nn.Module]:
    """``model`` in eval mode on ``device`` with frozen parameters; everything restored after.

    Training mode, the parameters' ``requires_grad`` and ``.grad`` and the model's device come
    back as they were, so an explanation leaves no gradient on the model.
    """
    was_training = model.training
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    old_device = params[0].device if params else device
    model.eval()
    for p in params:
        p.requires_grad_(False)
    model.to(device)
    try:
        yield model
    finally:
        model.to(old_device)
        for p, flag, grad in zip(params, flags, grads, strict=True):
            p.requires_grad_(flag)
            p.grad = grad
        model.train(was_training)


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's parameters (float32 when it has none)."""
    first = next(model.parameters(), None)
    return first.dtype if first is not None and first.is_floating_point() else torch.float32


def _device(model: nn.Module, device: str | torch.device) -> torch.device:
    if str(device) != "auto":
        return torch.device(device)
    first = next(model.parameters(), None)
    if first is not None and first.device.type != "cpu":
        return first.device
    return resolve_device("auto")


# --------------------------------------------------------------------------- methods


def _gradcam(model: nn.Module, x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    from captum.attr import LayerAttribution, LayerGradCam

    cam = LayerGradCam(model, layer).attribute(x, relu_attributions=True)
    return LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="trilinear")


def _guided_gradcam(model: nn.Module, x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    from captum.attr import GuidedGradCam

    return GuidedGradCam(model, layer).attribute(x, interpolate_mode="trilinear")


def _integrated_gradients(
    model: nn.Module, x: torch.Tensor, layer: nn.Module, *, n_steps: int = 50
) -> torch.Tensor:
    from captum.attr import IntegratedGradients

    baseline = torch.full_like(x, air_value())
    return IntegratedGradients(model).attribute(
        x, baselines=baseline, n_steps=int(n_steps), internal_batch_size=max(1, len(x)) * 10
    )


def _saliency(model: nn.Module, x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    from captum.attr import Saliency

    return Saliency(model).attribute(x, abs=True)


def _smoothgrad(
    model: nn.Module,
    x: torch.Tensor,
    layer: nn.Module,
    *,
    nt_samples: int = 16,
    stdev: float = 0.1,
    seed: int = 0,
) -> torch.Tensor:
    from captum.attr import NoiseTunnel, Saliency

    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)
        return NoiseTunnel(Saliency(model)).attribute(
            x,
            nt_type="smoothgrad",
            nt_samples=int(nt_samples),
            nt_samples_batch_size=int(nt_samples),
            stdevs=float(stdev),
            abs=True,
        )


def _occlusion(
    model: nn.Module,
    x: torch.Tensor,
    layer: nn.Module,
    *,
    window_vox: int = 6,
    stride_vox: int = 3,
) -> torch.Tensor:
    from captum.attr import Occlusion

    w, s = int(window_vox), int(stride_vox)
    if w < 1 or s < 1 or w > min(x.shape[2:]):
        raise ValueError(
            f"occlusion needs 1 <= window_vox <= the crop's size {tuple(x.shape[2:])} and "
            f"stride_vox >= 1, not window_vox={window_vox}, stride_vox={stride_vox}"
        )
    return Occlusion(model).attribute(
        x,
        sliding_window_shapes=(1, w, w, w),
        strides=(1, s, s, s),
        baselines=air_value(),
        perturbations_per_eval=16,
    )


_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "gradcam": _gradcam,
    "guided_gradcam": _guided_gradcam,
    "integrated_gradients": _integrated_gradients,
    "saliency": _saliency,
    "smoothgrad": _smoothgrad,
    "occlusion": _occlusion,
}


def _options_of(function: Callable[..., Any]) -> list[str]:
    import inspect

    params = inspect.signature(function).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def attribute(
    model: nn.Module,
    x: torch.Tensor | np.ndarray,
    method: str = "gradcam",
    *,
    target_layer: str | nn.Module | None = None,
    crops: Sequence[Crop] | None = None,
    crop_shape: Sequence[int] | None = None,
    crop_size_mm: float | None = None,
    device: str | torch.device = "auto",
    batch_size: int = 16,
    **options: Any,
) -> Attribution:
    """Attribution maps of the model's nodule logit for a batch of crops.

    Parameters
    ----------
    model : nn.Module
        A classifier returning one logit per crop (`nodulekit.models`). It is put in eval mode
        for the call and restored after; no gradient is left on its parameters.
    x : (N, 1, D, H, W) tensor or ndarray
        Crops normalised as the training data set does (`nodulekit.preprocess.normalize_hu`,
        air = 0.0).
    method : str
        One of `available_methods()`:

        - ``"gradcam"``: Captum ``LayerGradCam`` on ``target_layer`` (default
          ``model.last_conv``) with ReLU, upsampled trilinearly to the crop. Unsigned.
        - ``"guided_gradcam"``: Captum ``GuidedGradCam`` on the same layer. Signed.
        - ``"integrated_gradients"``: Captum ``IntegratedGradients`` from an **all-air
          baseline**: -1000 HU normalised with `normalize_hu` (0.0). Option ``n_steps=50``.
          Signed; the maps of a crop sum to ``logit(x) - logit(air)`` (completeness).
        - ``"saliency"``: absolute gradient. Unsigned.
        - ``"smoothgrad"``: Captum ``NoiseTunnel`` over ``Saliency``; options
          ``nt_samples=16``, ``stdev=0.1`` (input units, about 140 HU), ``seed=0``. Unsigned.
        - ``"occlusion"``: Captum ``Occlusion`` with cubes of ``window_vox=6`` voxels (8 mm
          at the default 1.33 mm voxels) moved by ``stride_vox=3``, replaced with air. Signed.
          Cost: one forward pass per position, ``((D - window) / stride + 1)^3`` per crop:
          343 passes for a 24^3 crop, about 100 times Grad-CAM.
    target_layer : str or nn.Module, optional
        Layer for the Grad-CAM methods, by name in ``model.named_modules()`` or as a module;
        ``model.last_conv`` by default.
    crops : sequence of Crop, optional
        The crops ``x`` was made from, kept on the result for `Attribution.paste_into`.
    crop_shape : 3 ints, optional
        The crop shape ``(z, y, x)`` the model was trained on (a checkpoint's
        ``config["crop_shape"]``); crops of another shape are refused.
    crop_size_mm : float, optional
        The crops' edge in mm the model was trained on (``config["crop_size_mm"]``); with
        ``crops``, crops of another physical size are refused.
    device : str or torch.device
        ``"auto"``: the model's device when it is on a GPU, else CUDA, MPS, then CPU.
    batch_size : int
        Crops explained at once.
    **options
        Method options listed above; others are refused.

    Returns
    -------
    Attribution
        ``maps`` (N, D, H, W) float32 on the CPU, plus the logits and the crops' geometry.

    Raises
    ------
    ValueError
        Unknown method (the message lists them) or option; no ``last_conv`` and no
        ``target_layer`` for a Grad-CAM method.
    GeometryError
        ``x`` is not ``(N, 1, D, H, W)``, or its crops differ from ``crop_shape`` or ``crops``.
    """
    if method not in _FUNCTIONS:
        raise ValueError(f"unknown method {method!r}; available: {', '.join(available_methods())}")
    function = _FUNCTIONS[method]
    accepted = _options_of(function)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"method {method!r} accepts the options {accepted}, not {unknown}")
    x = _check_batch(x, crop_shape)
    geometry = _check_crops(crops, x, crop_size_mm)
    layer, layer_name = (None, None)
    if method in ("gradcam", "guided_gradcam"):
        layer, layer_name = resolve_layer(model, target_layer)
    target = _device(model, device)
    dtype = model_dtype(model)
    maps, logits = [], []
    # attributions in full precision, even when called inside a caller's autocast region
    no_autocast = (
        torch.autocast("cuda", enabled=False) if target.type == "cuda" else contextlib.nullcontext()
    )
    with explaining(model, target), warnings.catch_warnings(), no_autocast:
        warnings.filterwarnings("ignore", module="captum")
        warnings.filterwarnings("ignore", message=".*(require|backward hooks).*")
        step = max(1, int(batch_size))
        for start in range(0, x.shape[0], step):
            chunk = x[start : start + step].to(target, dtype).detach().clone()
            chunk.requires_grad_(True)
            with torch.no_grad():
                logits.append(model(chunk).float().reshape(-1).cpu())
            out = function(model, chunk, layer, **options)
            maps.append(out.detach().float()[:, 0].cpu())
    return Attribution(
        maps=torch.cat(maps).numpy(),
        method=method,
        signed=METHODS[method].signed,
        logits=torch.cat(logits).numpy(),
        crops=geometry,
        layer=layer_name,
    )
