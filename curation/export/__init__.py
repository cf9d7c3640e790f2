"""Export curated clips for training: exact-frame mp4s with their audio, as WebDataset shards or an Open-Sora CSV."""
from curation.export.destination import DestinationError
from curation.export.exporter import ExportError, export_run, read_manifest, sample_metadata
from curation.export.params import ExportConfigError, ExportParams

__all__ = ["DestinationError", "ExportConfigError", "ExportError", "ExportParams", "export_run", "read_manifest",
           "sample_metadata"]
