import numpy as np
import pytest

from nodulekit.preprocess import WINDOWS, apply_window, normalize_hu, window_bounds


def test_presets_hold_level_and_width():
    assert WINDOWS["lung"] == (-600.0, 1500.0)
    assert WINDOWS["mediastinum"] == (40.0, 400.0)
    assert WINDOWS["bone"] == (400.0, 1800.0)
    assert window_bounds(preset="lung") == (-1350.0, 150.0)


def test_apply_window_maps_level_to_half_and_clips():
    out = apply_window(np.array([-1000, -160, 40, 240, 3000], np.int16), preset="mediastinum")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0])


def test_free_window_and_override():
    np.testing.assert_allclose(
        apply_window(np.array([0, 50, 100]), level_hu=50, width_hu=100), [0, 0.5, 1]
    )
    # a width given with a preset overrides the preset's width
    assert window_bounds(preset="lung", width_hu=100) == (-650.0, -550.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"preset": "liver"}, "preset must be one of"),
        ({"level_hu": 40}, "both level_hu and width_hu"),
        ({"level_hu": 40, "width_hu": 0}, "width_hu must be a positive"),
    ],
)
def test_bad_window_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        apply_window(np.zeros(3), **kwargs)


def test_normalize_hu_model_convention():
    out = normalize_hu(np.array([-2000, -1000, 0, 400, 3000], np.int16))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0, 0, 1000 / 1400, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(
        normalize_hu(np.array([0, 50, 100]), min_hu=0, max_hu=100), [0, 0.5, 1]
    )
    with pytest.raises(ValueError, match="max_hu must be greater than min_hu"):
        normalize_hu(np.zeros(2), min_hu=5, max_hu=5)
