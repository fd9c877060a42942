"""Preprocessing: HU windows, resampling, lung mask, crops in world space, the crop cache.

Never imports torch or draws anything. SimpleITK and scipy are imported inside the functions
that use them, so importing this package stays cheap.
"""

from nodulekit.preprocess.cache import CropCache, build_crop_cache
from nodulekit.preprocess.crop import (
    DEFAULT_CROP_SHAPE_ZYX,
    DEFAULT_CROP_SIZE_MM,
    Crop,
    CropBatch,
    crop,
    crop_many,
)
from nodulekit.preprocess.lung import lung_mask, lung_volume_ml
from nodulekit.preprocess.resample import resample, resample_like, resample_mask
from nodulekit.preprocess.window import WINDOWS, apply_window, normalize_hu, window_bounds

__all__ = [
    "DEFAULT_CROP_SHAPE_ZYX",
    "DEFAULT_CROP_SIZE_MM",
    "WINDOWS",
    "Crop",
    "CropBatch",
    "CropCache",
    "apply_window",
    "build_crop_cache",
    "crop",
    "crop_many",
    "lung_mask",
    "lung_volume_ml",
    "normalize_hu",
    "resample",
    "resample_like",
    "resample_mask",
    "window_bounds",
]
