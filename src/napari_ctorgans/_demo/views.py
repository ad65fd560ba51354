"""The demo's picture: coronal slices that together cut every organ, in the organ colours, with a legend.

``cover_slices`` chooses the slices; ``montage`` draws them with matplotlib (no display needed) and ``compose``
lays out canvas screenshots of the real viewer (:mod:`napari_ctorgans._napari.demo`) the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..organs import ORGANS


def present_organs(labels) -> list[int]:
    """The CT-ORG values present in ``labels``, in table order."""
    return [int(v) for v in np.unique(np.asarray(labels)) if int(v) in ORGANS and v]


def best_slices(labels) -> tuple[int, int]:
    """(coronal y, axial z) slices that show the most organs (then the most labelled voxels)."""
    labels = np.asarray(labels)

    def pick(axis: int) -> int:
        counts = _counts(labels, axis)
        return int(np.lexsort((counts.sum(axis=1), (counts > 0).sum(axis=1)))[-1])

    return pick(1), pick(0)


def _counts(labels: np.ndarray, axis: int) -> np.ndarray:
    """(slices along ``axis``, organ values) voxel counts."""
    values = [v for v in range(1, max(ORGANS) + 1)]
    return np.stack([(labels == v).sum(axis=tuple(a for a in range(3) if a != axis)) for v in values], axis=1)


def cover_slices(labels, axis: int = 1) -> list[int]:
    """Slices along ``axis`` (1: coronal) that together cut every organ present, chosen greedily: each next slice
    adds the most organs not yet shown (then the most of their voxels). Returned in slice order."""
    labels = np.asarray(labels)
    counts = _counts(labels, axis)
    missing = counts.sum(axis=0) > 0
    chosen: list[int] = []
    while missing.any():
        new = counts * missing
        best = int(np.lexsort((new.sum(axis=1), (new > 0).sum(axis=1)))[-1])
        chosen.append(best)
        missing &= counts[best] == 0
    return sorted(chosen)


def _legend(fig, maps: dict) -> None:
    import matplotlib.pyplot as plt

    present = sorted({v for labels in maps.values() for v in present_organs(labels)})
    handles = [plt.Rectangle((0, 0), 1, 1, color=ORGANS[v].color) for v in present]
    fig.legend(handles, [ORGANS[v].name for v in present], loc="outside lower center", ncol=max(len(present), 1),
               frameon=False, fontsize=11)


def panels(maps: dict) -> list[tuple[str, int]]:
    """(map name, coronal slice) of each panel: for every label map, the slices that cut every organ of any map."""
    ys = sorted({y for labels in maps.values() for y in cover_slices(labels)})
    return [(name, y) for name in maps for y in ys]


def montage(vol, maps: dict, png: Path, title: str = "") -> Path:
    """Coronal slices through every organ (head up) of each label map in ``maps`` (name -> labels), in the organ
    colours with a legend, drawn with matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    colours = np.zeros((256, 4))
    for value, organ in ORGANS.items():
        colours[value] = organ.color if value else (0, 0, 0, 0)
    chosen = panels(maps)
    sz, _, sx = vol.spacing
    aspect = vol.shape[0] * sz / (vol.shape[2] * sx)
    fig, axes = plt.subplots(1, len(chosen), figsize=(5 * len(chosen), 5 * aspect + 1.2), squeeze=False,
                             layout="constrained")
    for ax, (name, y) in zip(axes[0], chosen):
        ax.imshow(np.clip(vol.array[:, y, :], -160, 240), cmap="gray", origin="lower", aspect=sz / sx)
        ax.imshow(np.asarray(maps[name])[:, y, :].astype(np.uint8), cmap=ListedColormap(colours), vmin=0,
                  vmax=255, alpha=0.6, origin="lower", aspect=sz / sx, interpolation="nearest")
        ax.set_title(f"{name}: coronal slice {y}")
        ax.axis("off")
    _finish(fig, maps, png, title)
    return png


def compose(shots: list[np.ndarray], names: list[str], maps: dict, png: Path, title: str = "") -> Path:
    """Lay out canvas screenshots (RGBA arrays) side by side with their names and the organ legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shots = [_crop(shot[..., :3]) for shot in shots]
    aspect = max(shot.shape[0] / shot.shape[1] for shot in shots)
    fig, axes = plt.subplots(1, len(shots), figsize=(5 * len(shots), 5 * aspect + 1.2), squeeze=False,
                             layout="constrained")
    for ax, shot, name in zip(axes[0], shots, names):
        ax.imshow(shot)
        ax.set_title(name)
        ax.axis("off")
    _finish(fig, maps, png, title)
    return png


def _crop(rgb: np.ndarray, margin: int = 4) -> np.ndarray:
    """The screenshot without the canvas's black border around the scan."""
    lit = rgb.max(axis=-1) > 8
    if not lit.any():
        return rgb
    (r0, r1), (c0, c1) = [(int(np.flatnonzero(a)[0]), int(np.flatnonzero(a)[-1])) for a in (lit.any(1), lit.any(0))]
    return rgb[max(r0 - margin, 0):r1 + margin + 1, max(c0 - margin, 0):c1 + margin + 1]


def _finish(fig, maps: dict, png: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    _legend(fig, maps)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.savefig(png, dpi=80, bbox_inches="tight")
    plt.close(fig)
