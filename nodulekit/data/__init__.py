"""The data layer: scans, readers, LUNA16 tables and layout, the synthetic set.

Never imports torch: building a crop cache in worker processes stays light.
"""

from nodulekit.data.io import read_scan, write_scan
from nodulekit.data.scan import Scan

__all__ = ["Scan", "read_scan", "write_scan"]
