"""``ctorgans demo`` on the shipped real CT: the starter model and the labellers, the Dice table against the
reference, the statistics, the report picture, a DICOM-SEG and the picture of the viewer."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

#: the files the demo writes into its output folder (name -> what it is)
OUTPUTS = {
    "predicted_labels.nii.gz": "the five organs predicted on the sample CT",
    "dice.csv": "Dice and surface distance of each organ against the reference labels",
    "statistics.csv": "volume, HU and position of each predicted organ (ct.organ_statistics)",
    "report.png": "each organ through its centroid in three planes with the table (ct.write_report_png)",
    "ct_dicom": "the sample CT as a DICOM series (the source a DICOM-SEG refers to)",
    "predicted_labels_seg.dcm": "the prediction as a DICOM Segmentation of that series (ct.write_dicom_seg)",
    "summary.json": "the Dice table, the timings and the list of outputs",
}


def step(title: str) -> float:
    print(f"== {title}", flush=True)
    return time.perf_counter()


def done(t: float, timings: dict, key: str) -> None:
    timings[key] = round(time.perf_counter() - t, 2)
    print(f"   ({timings[key]:.1f} s)", flush=True)


def dice_table(pred, reference, spacing) -> list[dict]:
    """One row per organ of the reference: Dice, ASSD and volumes, from :func:`ct.metrics.evaluate`."""
    from ..metrics import evaluate

    keys = ("label", "organ", "dice", "assd", "pred_ml", "ref_ml")
    return [{k: getattr(r, k) for k in keys} for r in evaluate(pred, reference, spacing=spacing)]


def print_dice(rows: list[dict]) -> None:
    print(f"   {'organ':>8}  {'Dice':>5}  {'ASSD mm':>7}  {'predicted mL':>12}  {'reference mL':>12}")
    for r in rows:
        print(f"   {r['organ']:>8}  {r['dice']:5.3f}  {r['assd']:7.2f}  {r['pred_ml']:12.1f}  {r['ref_ml']:12.1f}")


def _write_csv(path: Path, rows: list[dict]) -> None:
    import csv
    import io

    from ..io import write_bytes_atomic

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(path, buf.getvalue().encode(), overwrite=True)


def _dicom(out: Path, vol, pred) -> Path:
    """The sample CT as a DICOM series in ``out/ct_dicom`` (the demo's earlier series replaced) and the prediction
    as a DICOM-SEG of it."""
    from ..io import read_volume
    from ..io.dicom_seg import write_dicom_seg
    from .dicom_ct import write_ct_series

    folder = out / "ct_dicom"
    for old in folder.glob("CT*.dcm"):  # the demo's own series of an earlier run
        old.unlink()
    write_ct_series(folder, vol, description="napari-ctorgans sample abdomen")
    series = read_volume(folder)
    return write_dicom_seg(out / "predicted_labels_seg.dcm", pred, series, overwrite=True)


def run_sample(out: Path, picture: Callable) -> dict:
    """The demo on the shipped sample; ``picture(vol, maps, out, title)`` draws the picture, returns its path."""
    import napari_ctorgans as ct

    from ..samples import CREDIT

    out.mkdir(parents=True, exist_ok=True)
    timings: dict = {}
    start = t = step(f"sample CT: {CREDIT}")
    vol, reference = ct.load_sample()
    print(f"   {vol}")
    done(t, timings, "read")
    t = step("predict the five organs: starter model, lungs and bone from the automatic labellers")
    with warnings.catch_warnings(record=True) as caught:  # the plausibility check's removals, said plainly
        warnings.simplefilter("always")
        pred = ct.predict(vol)
    for w in caught:
        print(f"   note: {w.message}")
    ct.write_labels(out / "predicted_labels.nii.gz", pred, like=vol, overwrite=True)
    done(t, timings, "predict")
    t = step("Dice against the reference labels (TotalSegmentator v2)")
    rows = dice_table(pred, reference, vol.spacing)
    print_dice(rows)
    _write_csv(out / "dice.csv", rows)
    done(t, timings, "dice")
    t = step("organ statistics (statistics.csv) and the report picture (report.png)")
    stats = ct.organ_statistics(pred, vol)
    from ..stats import write_statistics

    write_statistics(out / "statistics.csv", stats, overwrite=True, extra={"ct": "sample abdomen"})
    ct.write_report_png(out / "report.png", pred, vol, stats, overwrite=True)
    done(t, timings, "statistics_report")
    t = step("DICOM: the CT as a series (ct_dicom/) and the prediction as a DICOM-SEG")
    _dicom(out, vol, pred)
    done(t, timings, "dicom_seg")
    t = step("picture of the viewer: coronal slices through every organ, prediction and reference")
    png = picture(vol, {"predicted": pred, "reference": reference}, out, "starter model on the sample abdomen")
    done(t, timings, "picture")
    timings["total"] = round(time.perf_counter() - start, 2)
    summary = {"sample": CREDIT, "dice": rows, "timings_s": timings,
               "outputs": {name: str(out / name) for name in OUTPUTS} | {"picture": str(png)}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    print(f"outputs in {out.resolve()}: " + ", ".join([*OUTPUTS, Path(png).name]))
    print(f"demo took {timings['total']:.1f} s")
    return summary
