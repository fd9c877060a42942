"""The data layer: scans, readers, LUNA16 tables and layout, the synthetic set.

Never imports torch: building a crop cache in worker processes stays light.
"""

from nodulekit.data.deid import DeidReport, deidentify_folder
from nodulekit.data.io import read_scan, write_scan
from nodulekit.data.luna16 import Luna16, MissingScansWarning
from nodulekit.data.scan import Scan
from nodulekit.data.tables import read_annotations, read_candidates, read_seriesuids

__all__ = [
    "DeidReport",
    "Luna16",
    "MissingScansWarning",
    "Scan",
    "deidentify_folder",
    "read_annotations",
    "read_candidates",
    "read_scan",
    "read_seriesuids",
    "write_scan",
]
