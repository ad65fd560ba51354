"""``ctorgans train --cases DIR | --case CT LABELS ... --output-dir D``: train with a progress bar; checkpoints in D."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a segmentation model on labelled cases",
        description="Train a model on labelled cases: a folder (CT-ORG: volume-N.nii.gz + labels-N.nii.gz; "
        "MSD/nnU-Net: imagesTr/ + labelsTr/; or scans beside their NAME_labels.nii.gz, as ctorgans label writes "
        "them) and/or image + labels file pairs (--case CT LABELS, repeatable). --output-dir gets last.pt and "
        "config.json, and best.pt (the best validation Dice) when validation cases are given.",
    )
    p.add_argument("--cases", default=None, help="folder of training cases")
    p.add_argument("--case", nargs=2, action="append", default=[], metavar=("CT", "LABELS"),
                   help="one training case: a CT file and its label map (repeat for more cases)")
    p.add_argument("--val-cases", default=None, help="folder of validation cases (per-organ Dice, best.pt)")
    p.add_argument("--val-case", nargs=2, action="append", default=[], metavar=("CT", "LABELS"),
                   help="one validation case (repeatable)")
    p.add_argument("--output-dir", required=True,
                   help="folder for last.pt and config.json (and best.pt with validation cases)")
    p.add_argument("--preset", default="cpu-quick",
                   help="training preset (cpu-quick, starter, starter-refine, starter-adapt, paper); the three starter "
                   "presets without cases train the built-in starter model's stages on its own cases (random phantoms "
                   "and the weakly labelled thorax): scripts/train_starter.sh")
    p.add_argument("--config", default=None, help="a TrainConfig JSON file (overrides the preset)")
    p.add_argument("--iterations", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--crop-size", type=int, nargs="+", default=None, help="one size or three (z y x), in voxels")
    p.add_argument("--lr", type=float, default=None, help="learning rate")
    p.add_argument("--spacing", type=float, default=None, help="working spacing in mm (default 3)")
    p.add_argument("--loss", default=None, help="iou, dice or cross_entropy")
    p.add_argument("--weighting", default=None, help="class weighting: uniform, simple, square or sqrt")
    p.add_argument("--model", default=None, help="model preset (e.g. cpu-small)")
    p.add_argument("--augment", default=None, help="augmentation parameters JSON file (ct.AugmentParams)")
    p.add_argument("--augment-at", type=int, default=None, help="iteration to switch augmentation on (default: "
                   "the preset's: cpu-quick 0, from the start; paper: when the loss stops falling); -1 never")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="auto, cpu or cuda")
    p.add_argument("--cache-dir", default=None, help="where resampled cases are cached")
    p.add_argument("--init", default=None, help="start from the weights of this checkpoint (fine-tuning)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --output-dir with its own settings (only --iterations may grow)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace the whole run in --output-dir (last.pt, best.pt, config.json)")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace):
    from ..train import TrainConfig

    cfg = TrainConfig.from_json(Path(args.config)) if args.config else TrainConfig.preset(args.preset)
    changes = {
        "iterations": args.iterations, "batch_size": args.batch_size, "learning_rate": args.lr, "loss": args.loss,
        "class_weighting": args.weighting, "model": args.model, "seed": args.seed, "device": args.device,
        "init_checkpoint": args.init, "augment_at": args.augment_at, "spacing": args.spacing,
    }
    if args.crop_size:
        if len(args.crop_size) not in (1, 3):
            raise ValueError(f"--crop-size takes one size or three (z y x), got {args.crop_size}")
        changes["crop_size"] = tuple(args.crop_size) * (3 if len(args.crop_size) == 1 else 1)
    if args.augment:
        changes["augment"] = _read_json(Path(args.augment), "--augment")
    changes = {k: v for k, v in changes.items() if v is not None}
    return cfg.replace(output_dir=args.output_dir, **changes)


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} {path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; "
                         "fix the file") from None


def _cases(folder: str | None, pairs: list) -> list | str | None:
    """The cases of a folder and/or of ``--case CT LABELS`` pairs."""
    from ..train import find_cases

    if folder and not pairs:
        return folder
    return [*(find_cases(folder) if folder else []), *(tuple(p) for p in pairs)] or None


def run(args: argparse.Namespace) -> int:
    from ..train import train
    from ..train.starter import STARTER_STAGES, starter_cases

    cfg = build_config(args)
    train_cases, val_cases = _cases(args.cases, args.case), _cases(args.val_cases, args.val_case)
    if train_cases is None and args.preset in STARTER_STAGES and not args.config:
        print("generating the starter model's training cases (cached for the next run)...", file=sys.stderr)
        train_cases = starter_cases(cache_dir=args.cache_dir, anatomy=STARTER_STAGES[args.preset])
    if train_cases is None:
        raise ValueError("no training cases: give --cases FOLDER and/or --case CT LABELS (repeatable)")
    try:
        return _train(cfg, train(cfg, train_cases, val_cases, resume=args.resume, overwrite=args.overwrite,
                                 cache_dir=args.cache_dir))
    except MemoryError as exc:  # a step that cannot fit (refused before any work) or out of memory while training
        print(f"ctorgans train: error: {exc}", file=sys.stderr)
        return 1


def _train(cfg, gen) -> int:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    bar = tqdm(total=cfg.iterations, desc="train", unit="it", file=sys.stderr) if tqdm else None
    last = None
    try:
        for status in gen:
            last = status
            for w in status.warnings:
                print(f"warning: {w}", file=sys.stderr)
            if bar is not None:
                if bar.n == 0 and status.iteration > 1:
                    bar.update(status.iteration - 1)
                post = {"loss": f"{status.loss:.4f}", "lr": f"{status.lr:.2g}", "aug": int(status.augment_on)}
                if status.val_score is not None:
                    post["val_dice"] = f"{status.val_score:.3f}"
                bar.set_postfix(post)
                bar.update(1)
            if status.message:
                print(status.message, file=sys.stderr)
    finally:
        gen.close()
        if bar is not None:
            bar.close()
    if last is not None:
        written = [n for n in ("last.pt", "best.pt") if (Path(cfg.output_dir) / n).exists()]
        print(f"trained {last.iteration} iterations in {last.elapsed:.0f} s; {' and '.join(written)} in "
              f"{cfg.output_dir}")
        if last.val_dice:
            print("validation Dice: " + ", ".join(f"{k} {v:.3f}" for k, v in last.val_dice.items()))
    return 0
