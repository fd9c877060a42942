"""The built-in synthetic chest-CT set in LUNA16 format (`make_synthetic_luna16`).

Importing this package is cheap (numpy only); scipy, SimpleITK and tqdm load when a set
is drawn.
"""

from nodulekit.data.synthetic.generator import (
    GENERATOR_VERSION,
    UID_PREFIX,
    make_synthetic_luna16,
    synthetic_uid,
)

__all__ = ["GENERATOR_VERSION", "UID_PREFIX", "make_synthetic_luna16", "synthetic_uid"]
