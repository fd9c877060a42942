"""The data layer: scans, readers, LUNA16 tables and layout, the synthetic set.

Never imports torch: building a crop cache in worker processes stays light.
"""

from nodulekit.data.archive import safe_extract
from nodulekit.data.checksums import file_digest, verify_file
from nodulekit.data.deid import DeidReport, deidentify_folder
from nodulekit.data.download import download_luna16, plan_luna16
from nodulekit.data.io import read_mask, read_scan, write_scan
from nodulekit.data.luna16 import Luna16, MissingScansWarning, find_luna16_root
from nodulekit.data.mask import Mask
from nodulekit.data.scan import Scan, VoxelGrid
from nodulekit.data.synthetic import make_synthetic_luna16
from nodulekit.data.tables import read_annotations, read_candidates, read_seriesuids

__all__ = [
    "DeidReport",
    "Luna16",
    "Mask",
    "MissingScansWarning",
    "Scan",
    "VoxelGrid",
    "deidentify_folder",
    "download_luna16",
    "file_digest",
    "find_luna16_root",
    "make_synthetic_luna16",
    "plan_luna16",
    "read_annotations",
    "read_candidates",
    "read_mask",
    "read_scan",
    "read_seriesuids",
    "safe_extract",
    "verify_file",
    "write_scan",
]
