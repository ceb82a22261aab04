"""Importers and exporters for the ecosystem's preference-data formats."""

from core.data.exporter import export_data
from core.data.formats import ImportRecord, detect_format, iter_records
from core.data.importer import ImportReport, Preview, import_file, preview

__all__ = [
    "detect_format",
    "iter_records",
    "ImportRecord",
    "preview",
    "Preview",
    "import_file",
    "ImportReport",
    "export_data",
]
