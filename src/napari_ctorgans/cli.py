"""Command line: ``ctorgans info | label | augment | train | predict | evaluate | stats | rank | demo``.

Each sub-command lives in ``napari_ctorgans._cli.<name>`` with two functions: ``register(subparsers)`` adds its
parser (and sets ``func``), ``run(args) -> int`` does the work. Heavy imports happen inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ._version import __version__

COMMANDS = ("info", "label", "augment", "train", "predict", "evaluate", "stats", "rank", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ctorgans",
        description="Organ segmentation in CT: automatic labels, augmentation, training, prediction, evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"napari-ctorgans {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"napari_ctorgans._cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"napari_ctorgans._cli.{name}":
                continue  # command not available in this build
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, ValueError, TypeError, OSError) as exc:
        print(f"ctorgans {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
