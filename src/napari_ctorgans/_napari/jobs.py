"""Compute calls the widgets run in a separate process (:func:`.process.in_process`): work that holds Python's GIL
for seconds (matplotlib drawing a report, highdicom building a DICOM object) would freeze the viewer even in a worker
thread. Module-level functions of a Qt-free module, so the child process imports neither napari nor Qt."""

from __future__ import annotations

from pathlib import Path


def write_report_files(png: Path, table: Path, labels, image, stats: list[dict], title: str,
                       overwrite: bool) -> tuple[Path, Path]:
    """The PNG organ report and its table as CSV (``ct.write_report_png``, ``ct.stats.write_statistics``)."""
    from ..report import write_report_png
    from ..stats import write_statistics

    png = write_report_png(png, labels, image, stats, title=title, overwrite=overwrite)
    write_statistics(table, stats, overwrite=overwrite)
    return Path(png), Path(table)


def prepare_cases(train_cases: list, val_cases: list | None, spacing: float) -> tuple[list, list | None]:
    """The training (and validation) cases read, checked and resampled to ``spacing`` (``ct.train``'s ``Case``s)."""
    from ..train.data import load_cases

    return load_cases(list(train_cases), spacing=spacing), (load_cases(list(val_cases), spacing=spacing)
                                                           if val_cases else val_cases)
