"""The simulated annotator: clicks to Dice 0.90 (NoC@90) and Dice after 1, 3, 5 and 10 clicks, per organ.

    python benchmarks/bench_annotate.py [--scans abdomen_3mm,abdomen_dicom,abdomen_contrast] [--clicks 20]
        [--starts draft,empty,grow] [--json out.json]
    python benchmarks/bench_annotate.py --timing      (seconds per prompt on the native scans, chest included)
    python benchmarks/bench_annotate.py --single [--scans ...]   (one click at 30 random points >= 10 mm inside
        the liver and each kidney: Dice min / median / max)

The robot user of the interactive segmentation literature: each click goes to the centre (the voxel farthest from
the edge) of the largest error region, the largest connected false-negative or false-positive piece of the organ;
positive for a miss, negative for a false region; up to ``--clicks`` per organ. Each click calls
``ct.segment_prompts`` with every click so far and the organ as it stands (``current``). Each organ is corrected
on its own: the draft's other organs do not block it (in the viewer they would, until corrected too). Starts:

- ``draft``: the starter model's labels (``ct.predict``), corrected click by click;
- ``empty``: an empty layer;
- ``grow``: the old grow tool (``ct.grow_region`` from every positive click so far, from an empty layer; it has no
  negative clicks, so those clicks change nothing).

Scans (../shared/data, see its README): ``ct/abdomen_3mm`` (five organs), ``ct/abdomen_dicom`` (liver and bone) and
``ct/abdomen_contrast`` (liver, kidneys, lungs and bone; 3D-IRCADb-01 patient 1, IRCAD, CC BY-NC-ND 4.0:
evaluation only, nothing derived from it is written). Kidneys count as one organ (both kidneys).

A hook for the cohort curve (correct one scan, fine-tune, count clicks on the other): :func:`annotate` takes any
starting label map, so a fine-tuned model's ``ct.predict`` output is scored exactly as the starter's draft.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

import napari_ctorgans as ct

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ct"
SCANS = {
    "abdomen_3mm": ("abdomen_3mm.nii.gz", "abdomen_3mm_ctorg.nii.gz", (1, 2, 3, 4, 5)),
    "abdomen_dicom": ("abdomen_dicom", "abdomen_dicom_ctorg.nii.gz", (1, 5)),
    "abdomen_contrast": ("abdomen_contrast.nii.gz", "abdomen_contrast_ctorg.nii.gz", (1, 3, 4, 5)),
}
REPORT_AT = (1, 3, 5, 10)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    n = np.count_nonzero(a) + np.count_nonzero(b)
    return 1.0 if n == 0 else 2.0 * np.count_nonzero(a & b) / n


def robot_click(pred: np.ndarray, ref: np.ndarray, spacing) -> tuple[np.ndarray, bool] | None:
    """The next click: the centre of the largest error piece, and True for a positive click (None: no error)."""
    best = None
    for positive, err in ((True, ref & ~pred), (False, pred & ~ref)):
        lab, n = ndi.label(err)
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        i = int(sizes.argmax())
        if best is None or sizes[i] > best[0]:
            best = (int(sizes[i]), positive, lab, i)
    if best is None:
        return None
    _, positive, lab, i = best
    sl = ndi.find_objects(lab)[i - 1]
    sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
    piece = lab[sl] == i
    depth = ndi.distance_transform_edt(piece, sampling=spacing)
    centre = np.unravel_index(int(depth.argmax()), piece.shape)
    return np.array([c + s.start for c, s in zip(centre, sl)]), positive


def annotate(vol, ref_labels, organ: int, start: np.ndarray | None, *, clicks: int = 20, mode: str = "prompts"):
    """Dice after each click (index 0: before any click) and the seconds of each prompt."""
    ref = ref_labels == organ
    current = np.zeros(vol.shape, bool) if start is None else start == organ
    pos, neg, curve, times = [], [], [dice(current, ref)], []
    for _ in range(clicks):
        click = robot_click(current, ref, vol.spacing)
        if click is None:
            curve.append(1.0)
            continue
        (pos if click[1] else neg).append(click[0])
        t = time.perf_counter()
        if mode == "grow":
            if click[1]:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        current = ct.grow_region(vol, np.array(pos))
                    except ValueError:
                        pass
        else:
            # as in the viewer: the new click, with the earlier positive clicks the organ holds as its markers
            marks = [p for p in pos[:-1] if current[tuple(p)]] + ([click[0]] if click[1] else [])
            res = ct.segment_prompts(vol, organ, positive=marks, negative=[click[0]] if not click[1] else None,
                                     current=current)
            current = res.mask
        times.append(time.perf_counter() - t)
        curve.append(dice(current, ref))
        if len(curve) > max(REPORT_AT) and max(curve) >= 0.9:
            break
    return curve, times


def noc(curve, clicks: int, target: float = 0.9) -> int:
    """Clicks to reach ``target`` (``clicks`` when never reached; 0 when the start already reaches it)."""
    hit = [k for k, d in enumerate(curve) if d >= target]
    return hit[0] if hit else clicks


def at(curve, k: int) -> float:
    return curve[min(k, len(curve) - 1)]  # the robot stops once past 10 clicks at Dice >= 0.9


def load(name: str):
    ct_name, ref_name, organs = SCANS[name]
    vol = ct.read_volume(DATA / ct_name)
    ref = np.asarray(ct.read_labels(DATA / ref_name, like=vol).array)
    return vol, ref, organs


def run(names, starts, clicks: int) -> list[dict]:
    rows = []
    for name in names:
        vol, ref, organs = load(name)
        draft = ct.predict(vol) if "draft" in starts else None
        for organ in organs:
            for start in starts:
                begin = draft if start == "draft" else None
                curve, times = annotate(vol, ref, organ, begin, clicks=clicks,
                                        mode="grow" if start == "grow" else "prompts")
                row = {"scan": name, "organ": ct.ORGANS[organ].name, "start": start, "dice0": curve[0],
                       **{f"dice{k}": at(curve, k) for k in REPORT_AT}, "noc90": noc(curve, clicks),
                       "max_s": max(times) if times else 0.0, "median_s": float(np.median(times)) if times else 0.0}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def table(rows, clicks: int) -> str:
    head = ("| scan | organ | start | Dice before | 1 click | 3 | 5 | 10 | NoC@90 | s/prompt (max) |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r['scan']} | {r['organ']} | {r['start']} | {r['dice0']:.2f} | "
                     + " | ".join(f"{r[f'dice{k}']:.2f}" for k in REPORT_AT)
                     + f" | {r['noc90'] if r['noc90'] < clicks else f'>{clicks - 1}'} | {r['max_s']:.2f} |")
    lines.append("")
    for start in dict.fromkeys(r["start"] for r in rows):
        for scan in dict.fromkeys(r["scan"] for r in rows):
            sel = [r["noc90"] for r in rows if r["start"] == start and r["scan"] == scan]
            if sel:
                lines.append(f"- {scan}, {start}: mean NoC@90 {np.mean(sel):.1f} over {len(sel)} organs "
                             f"(an organ never at 0.90 counts {clicks})")
    return "\n".join(lines)


def timing(n: int = 10, seed: int = 0) -> None:
    """Seconds per prompt on the native scans: the per-scan preparation once, then ``n`` clicks."""
    rng = np.random.default_rng(seed)
    cases = [("chest_native.nii.gz", None, 3), ("abdomen_dicom", "abdomen_dicom_ctorg.nii.gz", 1),
             ("abdomen_contrast.nii.gz", "abdomen_contrast_ctorg.nii.gz", 1)]
    for ct_name, ref_name, organ in cases:
        if not (DATA / ct_name).exists():
            continue
        vol = ct.read_volume(DATA / ct_name)
        ref = (ct.label_lungs(vol) if ref_name is None
               else np.asarray(ct.read_labels(DATA / ref_name, like=vol).array) == organ)
        inside = np.argwhere(ndi.distance_transform_edt(ref[::2, ::4, ::4]) >= 3) * [2, 4, 4]
        t = time.perf_counter()
        ct.segment_prompts(vol, organ, positive=[inside[0]])
        first = time.perf_counter() - t
        times = []
        for i in rng.choice(len(inside), size=n, replace=False):
            t = time.perf_counter()
            ct.segment_prompts(vol, organ, positive=[inside[i]])
            times.append(time.perf_counter() - t)
        print(f"{ct_name} {vol.shape} {ct.ORGANS[organ].name}: first prompt (with the per-scan work) {first:.2f} s, "
              f"then {n} prompts: median {np.median(times):.2f} s, max {max(times):.2f} s")


def single_clicks(names, n: int = 30, depth_mm: float = 10.0, seed: int = 0) -> None:
    """Dice of one positive click at ``n`` random points at least ``depth_mm`` inside the liver and each kidney
    (a kidney is scored against that kidney alone), from an empty layer."""
    rng = np.random.default_rng(seed)
    for name in names:
        vol, ref, organs = load(name)
        for organ in (o for o in (1, 4) if o in organs):
            lab, pieces = ndi.label(ref == organ) if organ == 4 else ((ref == organ).astype(int), 1)
            for piece in range(1, pieces + 1):
                target = lab == piece
                if np.count_nonzero(target) * vol.voxel_volume_ml < 20:  # a sliver cut by the scan's edge
                    continue
                inside = np.argwhere(ndi.distance_transform_edt(target, sampling=vol.spacing) >= depth_mm)
                scores, flagged = [], 0
                for i in rng.choice(len(inside), size=min(n, len(inside)), replace=False):
                    res = ct.segment_prompts(vol, organ, positive=[inside[i]])
                    scores.append(dice(res.mask, target if organ == 4 else ref == organ))
                    flagged += not res.plausible
                what = "kidney " + str(piece) if organ == 4 else ct.ORGANS[organ].name
                print(f"{name} {what}: {len(scores)} clicks, Dice min {min(scores):.3f}, median "
                      f"{np.median(scores):.3f}, max {max(scores):.3f}; flagged {flagged}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scans", default=",".join(SCANS))
    ap.add_argument("--starts", default="draft,empty,grow")
    ap.add_argument("--clicks", type=int, default=20)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--single", action="store_true", help="one click inside the liver and each kidney")
    args = ap.parse_args(argv)
    if args.timing:
        timing()
        return 0
    names = [s for s in args.scans.split(",") if (DATA / SCANS[s][0]).exists()]
    if args.single:
        single_clicks(names)
        return 0
    rows = run(names, args.starts.split(","), args.clicks)
    print(table(rows, args.clicks))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
