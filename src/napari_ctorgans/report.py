"""A one-page organ report: each organ through its centroid in three planes, outlined in its colour, and the table.

Drawn with matplotlib's Agg backend (no display needed); the numbers come from
:func:`napari_ctorgans.stats.organ_statistics`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from .organs import ORGANS
from .stats import organ_statistics
from .volume import Volume

#: display window (HU) per organ value; others use the soft-tissue window.
_WINDOWS = {3: (-1350.0, 150.0), 5: (-500.0, 1300.0)}
_SOFT = (-160.0, 240.0)


def _through(mask: np.ndarray, centroid: tuple) -> tuple[int, int, int]:
    """The voxel planes through the centroid; along an axis where that plane misses the organ (two lungs, two
    kidneys), the nearest plane that cuts it."""
    out = []
    for axis, c in enumerate(centroid):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        out.append(int(hits[np.argmin(np.abs(hits - c))]))
    return tuple(out)  # type: ignore[return-value]


def _planes(volume: Volume, index: tuple) -> list[tuple[str, tuple, tuple]]:
    """(title, slicer, extent in mm) of the axial, coronal and sagittal planes through a voxel."""
    k, j, i = index
    (nz, ny, nx), (sz, sy, sx) = volume.shape, volume.spacing
    return [
        ("axial", (k, slice(None), slice(None)), (0, nx * sx, ny * sy, 0)),
        ("coronal", (slice(None), j, slice(None)), (0, nx * sx, 0, nz * sz)),
        ("sagittal", (slice(None), slice(None), i), (0, ny * sy, 0, nz * sz)),
    ]


def _colour(value: int) -> tuple:
    organ = ORGANS.get(value)
    return organ.color[:3] if organ is not None and value else (1.0, 0.0, 1.0)


def _draw_organ(axes, volume: Volume, labels: np.ndarray, row: dict) -> None:
    low, high = _WINDOWS.get(row["value"], _SOFT)
    planes = _planes(volume, _through(labels == row["value"], row["centroid_index"]))
    for ax, (title, sl, extent) in zip(axes, planes):
        image, mask = volume.array[sl], labels[sl] == row["value"]
        origin = "upper" if title == "axial" else "lower"
        ax.imshow(image, cmap="gray", vmin=low, vmax=high, extent=extent, origin=origin, interpolation="nearest")
        if mask.any():
            ax.contour(mask.astype(np.uint8), levels=[0.5], colors=[_colour(row["value"])], linewidths=1.2,
                       extent=extent, origin=origin)
        ax.set_title(f"{row['name']} - {title}", fontsize=8, color="black")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_ylabel(f"{row['volume_ml']:.0f} mL" + (" (cut off)" if row.get("cut_off") else ""), fontsize=9)


def organ_note(row: dict) -> str:
    """What to keep in mind about one organ of :func:`~napari_ctorgans.stats.organ_statistics`: cut off by the
    scan (its volume is the part in view), and a low confidence to check; empty when neither."""
    from .quality import CUT_OFF_TEXT

    notes = []
    if row.get("cut_off"):
        notes.append(f"{CUT_OFF_TEXT} ({', '.join(row['cut_off'])})")
    if row.get("confidence") is not None:
        notes.append(f"confidence {row['confidence']:.2f}" + (": check" if row.get("check") else ""))
    return "; ".join(notes)


def _table(ax, stats: list[dict]) -> None:
    columns = ["organ", "volume (mL)", "HU mean ± sd", "HU median [p5, p95]", "centroid L, P, S (mm)", "pieces",
               "note"]
    cells = [[
        r["name"], f"{r['volume_ml']:.1f}", f"{r['hu_mean']:.0f} ± {r['hu_std']:.0f}",
        f"{r['hu_median']:.0f} [{r['hu_p5']:.0f}, {r['hu_p95']:.0f}]",
        ", ".join(f"{v:.1f}" for v in r["centroid_lps"]), str(r["pieces"]), organ_note(r).replace("; ", "\n"),
    ] for r in stats]
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=columns, loc="center", cellLoc="center",
                     colWidths=[0.09, 0.09, 0.12, 0.15, 0.21, 0.06, 0.28])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1.0, 1.3)
    for n, r in enumerate(stats, start=1):
        table[n, 0].set_facecolor((*_colour(r["value"]), 0.45))


def organ_report(labels, volume: Volume, stats: list[dict] | None = None, *, title: str | None = None):
    """The report as a matplotlib Figure (not shown; save it or use :func:`write_report_png`).

    Its table notes each organ cut off by the scan and, when the statistics carry confidences
    (``organ_statistics(..., confidence=)``), each organ's confidence, "check" when it is low
    (:func:`organ_note`).

    Parameters
    ----------
    labels : ndarray (Z, Y, X) of int, or Volume
        Label map on the grid of ``volume``.
    volume : Volume
        The CT in HU.
    stats : list of dict, optional
        :func:`~napari_ctorgans.stats.organ_statistics` of them, when already computed.
    """
    from matplotlib.figure import Figure

    stats = organ_statistics(labels, volume) if stats is None else stats
    if not stats:
        raise ValueError("the label map is empty (no organ labelled); there is nothing to report")
    arr = labels.array if isinstance(labels, Volume) else np.asarray(labels)
    n = len(stats)
    fig = Figure(figsize=(8.27, 1.9 * n + 0.3 * n + 1.2), dpi=110, layout="constrained")  # A4 width
    grid = fig.add_gridspec(n + 1, 3, height_ratios=[1.9] * n + [0.3 * n + 0.6])
    for r, row in enumerate(stats):
        _draw_organ([fig.add_subplot(grid[r, c]) for c in range(3)], volume, arr, row)
    _table(fig.add_subplot(grid[n, :]), stats)
    fig.suptitle(title or f"Organs of {Path(volume.path).name if volume.path else 'the CT'}", fontsize=11)
    return fig


def write_report_png(path: str | os.PathLike, labels, volume: Volume, stats: list[dict] | None = None, *,
                     title: str | None = None, overwrite: bool = False) -> Path:
    """Save :func:`organ_report` as a PNG, rendered in memory and written verified and atomically.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False (checked before drawing).
    OSError
        The PNG could not be written completely (full disk, quota, file-size limit); the previous file is
        unchanged (:func:`napari_ctorgans.io.write_bytes_atomic`).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from .io import write_bytes_atomic

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) or choose another name")
    fig = organ_report(labels, volume, stats, title=title)
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return write_bytes_atomic(path, buf.getvalue(), overwrite=overwrite)


__all__ = ["organ_report", "write_report_png", "organ_note"]
