"""The CNNs, each a plain ``torch.nn.Module`` that knows nothing about files.

Every classifier takes crops ``(N, 1, D, H, W)`` normalised to ``[0, 1]`` and returns one
logit per crop (``(N,)``; nodule = 1, train with ``BCEWithLogitsLoss``); ``model.last_conv``
is its last ``Conv3d`` for Grad-CAM.

>>> from nodulekit.models import build_model, available_models
>>> available_models()
['cnn', 'resnet', 'resnet18', 'unet', 'unet3d']
>>> type(build_model()).__name__
'NoduleCNN'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


def _cnn(**options: Any) -> nn.Module:
    from nodulekit.models.cnn import NoduleCNN

    return NoduleCNN(**options)


def _resnet(**options: Any) -> nn.Module:
    from nodulekit.models.resnet import NoduleResNet

    return NoduleResNet(**options)


def _resnet18(**options: Any) -> nn.Module:
    from nodulekit.models.resnet import NoduleResNet

    return NoduleResNet(**{"layers": (2, 2, 2, 2), **options})


def _unet(**options: Any) -> nn.Module:
    from nodulekit.models.unet import NoduleUNet

    # (8, 16, 32, 64): a third of the default widths' time per batch on the CPU, and enough
    # for nodules; pass channels for a wider network on a GPU
    return NoduleUNet(**{"dims": 2, "channels": (8, 16, 32, 64), **options})


def _unet3d(**options: Any) -> nn.Module:
    from nodulekit.models.unet import NoduleUNet

    return NoduleUNet(**{"dims": 3, "channels": (8, 16, 32), **options})


#: name -> factory; ``"cnn"`` (the small CNN) is the default.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "cnn": _cnn,
    "resnet": _resnet,
    "resnet18": _resnet18,
    "unet": _unet,
    "unet3d": _unet3d,
}

#: the segmentation networks (`nodulekit.models.unet.NoduleUNet`, 2.5D and 3D); the others
#: are the candidate classifiers
SEGMENTATION_MODELS = ("unet", "unet3d")


#: Old names still read, never listed or written. Runs trained before the rename store
#: ``"model": "default"`` in their ``config.json`` and in every checkpoint's config; without
#: this entry ``--resume`` and loading those checkpoints for Grad-CAM would fail. A config
#: holding an old name is rewritten to the current one (`canonical_model_name`).
LEGACY_NAMES: dict[str, str] = {"default": "cnn"}


def canonical_model_name(name: str) -> str:
    """The current name of a model (``"default"``, from old runs, is ``"cnn"``)."""
    return LEGACY_NAMES.get(name, name)


def available_models() -> list[str]:
    """Names `build_model` accepts."""
    return sorted(MODELS)


def build_model(name: str = "cnn", **options: Any) -> nn.Module:
    """Build a network by name: a classifier (``"cnn"``, ``"resnet"``, ``"resnet18"``) or a
    segmentation U-Net (``"unet"``: 2.5D, five slices as channels; ``"unet3d"``).

    ``options`` go to the model's constructor (e.g. ``channels=(8, 16, 32)``).
    """
    name = canonical_model_name(name)
    if name not in MODELS:
        raise ValueError(f"model name must be one of {available_models()}, not {name!r}")
    return MODELS[name](**options)


__all__ = [
    "LEGACY_NAMES",
    "MODELS",
    "SEGMENTATION_MODELS",
    "available_models",
    "build_model",
    "canonical_model_name",
]
