"""Plot the false-negative / false-positive penalties of the IOU and Dice losses, and the power family.

Curves are computed with ``ct.losses`` itself (not the closed forms), so the figure doubles as a check. Run::

    .venv/bin/python benchmarks/plot_losses.py  # writes docs/images/loss_penalties.png
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from napari_ctorgans.nn import losses  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "loss_penalties.png"


def binary_loss(fn, p, y, **kw) -> float:
    p = torch.as_tensor(p, dtype=torch.float64)[None, None]
    y = torch.as_tensor(y, dtype=torch.float64)[None, None]
    return float(fn(p, y, **kw))


def main() -> None:
    n_vox, n_fg = 400, 100
    y = np.zeros(n_vox)
    y[:n_fg] = 1
    errors = np.linspace(0, n_fg, 41)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    for fn, name, style in [(losses.iou_loss, "IOU", "-"), (losses.dice_loss, "Dice", "--")]:
        fn_curve, fp_curve = [], []
        for eps in errors:
            p = y.copy()
            p[:n_fg] -= eps / n_fg  # false negatives: p <= y, ||p - y||_1 = eps
            fn_curve.append(binary_loss(fn, p, y))
            q = y.copy()
            q[n_fg : 2 * n_fg] += eps / n_fg  # false positives: p >= y
            fp_curve.append(binary_loss(fn, q, y))
        ax.plot(errors / n_fg, fn_curve, style, color="C3", label=f"{name}: false negatives")
        ax.plot(errors / n_fg, fp_curve, style, color="C0", label=f"{name}: false positives")
    ax.plot(errors / n_fg, errors / n_fg, ":", color="gray", lw=1, label="eps/N  and  eps/(N+eps)")
    ax.plot(errors / n_fg, errors / (n_fg + errors), ":", color="gray", lw=1)
    ax.set_xlabel("misprediction error  eps / N   (N = |y|)")
    ax.set_ylabel("loss")
    ax.set_title("Penalty of each error type")
    ax.legend(fontsize=8)
    ax = axes[1]
    t = np.linspace(0, 1, 51)
    for m in (0.5, 1.0, 2.0, 4.0):
        # soft prediction: p = t on the foreground, 1 - t on the background (t = 1 is perfect)
        vals = [binary_loss(losses.iou_loss, np.where(y == 1, v, 1 - v), y, power=m) for v in t]
        ax.plot(t, vals, label=f"IOU loss, power m = {m:g}")
    ax.set_xlabel("confidence t  (p = t on y = 1, 1 - t on y = 0)")
    ax.set_ylabel("loss")
    ax.set_title("Power family (eq. 8): same binary values, different soft ones")
    ax.legend(fontsize=8)
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
