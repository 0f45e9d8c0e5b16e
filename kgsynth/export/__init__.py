"""Accepted items → Hugging Face datasets: configurations, leak-free splits, the
dataset card, writers (save_to_disk, parquet, JSONL), Hub publishing, and the
quality report with plots."""

from kgsynth.export.build import build_configs, build_dataset
from kgsynth.export.card import card_license
from kgsynth.export.hub import push_dataset
from kgsynth.export.report import write_report
from kgsynth.export.writer import ExportResult, export_dataset

__all__ = [
    "ExportResult",
    "build_configs",
    "build_dataset",
    "card_license",
    "export_dataset",
    "push_dataset",
    "write_report",
]
