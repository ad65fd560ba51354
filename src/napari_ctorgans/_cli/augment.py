"""``ctorgans augment``: write randomly augmented samples of a CT (and its labels) to a folder."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "augment",
        help="write augmented samples (warp, occlusion, noise, window) of a CT and its labels",
        description="Write N augmented samples: sample_NNN_image.nii.gz (windowed to [0, 1]) and "
        "sample_NNN_labels.nii.gz, plus params.json and transforms.json describing what was drawn.",
    )
    p.add_argument("image", help="CT file or DICOM folder")
    p.add_argument("labels_pos", nargs="?", metavar="LABELS", help="label map on the CT's grid (optional)")
    p.add_argument("--labels", help="label map on the CT's grid (same as the positional LABELS)")
    p.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    p.add_argument("--params", help="JSON file of augmentation parameters (default: the built-in ranges)")
    p.add_argument("--n", type=int, default=8, help="number of samples (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first sample; sample k uses seed + k")
    p.add_argument("--out-shape", type=int, nargs=3, metavar=("Z", "Y", "X"), help="crop size (default: input)")
    p.add_argument("--backend", default="cpu", choices=("auto", "cpu", "cuda"))
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    from ._args import add_series

    add_series(p, "IMAGE")
    p.set_defaults(func=run)


def _refuse_earlier_run(out_dir, n: int, with_labels: bool, overwrite: bool) -> None:
    """Refuse, before any work, to replace files of an earlier run in ``out_dir`` unless ``overwrite``."""
    names = ["params.json", "transforms.json"]
    for k in range(n):
        names += [f"sample_{k:03d}_image.nii.gz"] + ([f"sample_{k:03d}_labels.nii.gz"] if with_labels else [])
    existing = [name for name in names if (out_dir / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds {len(existing)} of the files this run writes ({', '.join(existing[:4])}"
            f"{', ...' if len(existing) > 4 else ''}); pass --overwrite to replace them or choose another -o folder. "
            "Nothing was written."
        )


def _save_params(params, path, *, overwrite: bool) -> None:
    """params.json through the verified atomic writer: it must load back as the same parameters."""
    from ..augment import AugmentParams
    from ..io import atomic_output
    from ..io._verify import Damaged

    def same(tmp) -> None:
        try:
            back = AugmentParams.load(tmp)
        except (ValueError, TypeError) as exc:
            raise Damaged(f"it does not read back ({exc})") from None
        if back != params:
            raise Damaged("it reads back as other parameters than those written")

    with atomic_output(path, overwrite=overwrite, verify=same) as tmp:
        params.save(tmp)


def _record(k: int, seed: int, drawn: dict) -> dict:
    import numpy as np

    return {
        "sample": k,
        "seed": seed,
        "matrix": np.asarray(drawn["matrix"]).tolist(),
        "offset": np.asarray(drawn["offset"]).tolist(),
        "reflect": drawn["reflect"],
        "window": drawn["window"],
        "noise_sigma": drawn["noise_sigma"],
        "occlusion": drawn["occlusion"],
        "elastic": drawn["elastic"] is not None,
    }


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np
    from tqdm import tqdm

    from ..augment import AugmentParams, augment
    from ..io import read_labels, write_bytes_atomic, write_labels, write_volume

    if args.labels and args.labels_pos:
        raise ValueError("give the labels either as LABELS or with --labels, not both")
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    labels_path = args.labels or args.labels_pos
    params = AugmentParams.load(args.params) if args.params else AugmentParams()
    out_dir = Path(args.output)
    _refuse_earlier_run(out_dir, args.n, bool(labels_path), args.overwrite)
    from ._ct import read_ct

    vol = read_ct(args.image, series=args.series, option="IMAGE")
    lab = read_labels(labels_path).array if labels_path else None
    out_dir.mkdir(parents=True, exist_ok=True)
    _save_params(params, out_dir / "params.json", overwrite=args.overwrite)
    out_shape = tuple(args.out_shape) if args.out_shape else vol.shape
    # centred crop/pad: the output grid keeps the spacing, its centre sits on the input's centre
    shift = (np.asarray(vol.shape) - np.asarray(out_shape)) / 2.0 * np.asarray(vol.spacing)
    origin = tuple(np.asarray(vol.origin) + np.asarray(vol.direction) @ shift)
    image = vol.array.astype(np.float32)
    records = []
    for k in tqdm(range(args.n), desc="augment", unit="sample"):
        seed = args.seed + k
        out, lout, drawn = augment(
            image, lab, params, seed=seed, backend=args.backend, out_shape=out_shape, return_transform=True
        )
        like = vol.with_array(np.asarray(out), spacing=vol.spacing, origin=origin)
        # each image and label map is written verified and atomically (write_volume / write_labels)
        write_volume(out_dir / f"sample_{k:03d}_image.nii.gz", like, overwrite=args.overwrite)
        if lout is not None:
            write_labels(out_dir / f"sample_{k:03d}_labels.nii.gz", np.asarray(lout), like, overwrite=args.overwrite)
        records.append(_record(k, seed, drawn))
    write_bytes_atomic(out_dir / "transforms.json", (json.dumps(records, indent=1) + "\n").encode(),
                       overwrite=args.overwrite)
    print(f"wrote {args.n} samples of shape {out_shape} to {out_dir}")
    return 0
