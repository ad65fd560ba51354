"""Write docs/api.md from the docstrings of the public API (run: .venv/bin/python docs/make_api.py)."""

from __future__ import annotations

import inspect
from pathlib import Path

import napari_ctorgans as ct

SECTIONS = {
    "Data": ["Volume", "read_volume", "read_labels", "write_labels", "write_volume", "list_dicom_series",
             "resample", "gaussian_sigmas", "make_phantom", "load_sample", "make_random_phantom", "ORGANS", "check_ct", "NotCTError", "padding_mask"],
    "Clinical interoperability": ["write_dicom_seg", "write_rtstruct", "organ_statistics", "organ_report",
                                  "write_report_png"],
    "Labelling": ["morphology", "label_lungs", "label_bones", "label_body", "auto_label", "grow_region",
                  "segment_prompts", "PromptResult"],
    "Augmentation": ["AugmentParams", "augment", "PrefetchQueue"],
    "Learning": ["ModelConfig", "build_model", "MODEL_PRESETS", "losses", "metrics"],
    "Training and prediction": ["TrainConfig", "TRAIN_PRESETS", "train", "load_checkpoint", "save_checkpoint",
                                "CheckpointError", "RunConfigMismatch", "sliding_window",
                                "SlidingWindowInferer", "predict", "plausible", "find_landmarks", "starter_path"],
    "Review and model checks": ["uncertainty", "next_region", "rank_scans", "compare_models", "holdout_check"],
}


def _doc(obj) -> str:
    return inspect.cleandoc(obj.__doc__ or "(no docstring)")


def _signature(name: str, obj) -> str:
    try:
        return f"{name}{inspect.signature(obj)}"
    except (TypeError, ValueError):
        return name


def _module_members(mod) -> list[tuple[str, object]]:
    names = getattr(mod, "__all__", None) or [n for n in dir(mod) if not n.startswith("_")]
    out = []
    for n in names:
        obj = getattr(mod, n, None)
        if callable(obj) and getattr(obj, "__module__", "").startswith("napari_ctorgans"):
            out.append((n, obj))
    return out


def main() -> None:
    lines = ["# API reference", "", "Generated from the docstrings by `docs/make_api.py`. "
             "Everything is importable as `import napari_ctorgans as ct`, without Qt.", ""]
    for section, names in SECTIONS.items():
        lines += [f"## {section}", ""]
        for name in names:
            try:
                obj = getattr(ct, name)
            except Exception as exc:  # a part not available in this build
                lines += [f"### `ct.{name}`", "", f"_not available: {exc}_", ""]
                continue
            if inspect.ismodule(obj):
                lines += [f"### `ct.{name}`", "", _doc(obj).split("\n\n")[0], ""]
                for sub, fn in _module_members(obj):
                    lines += [f"#### `ct.{name}.{_signature(sub, fn)}`", "", "```text", _doc(fn), "```", ""]
            elif callable(obj):
                lines += [f"### `ct.{_signature(name, obj)}`", "", "```text", _doc(obj), "```", ""]
            else:
                lines += [f"### `ct.{name}`", "", "```text", repr(obj)[:2000], "```", ""]
    Path(__file__).with_name("api.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
