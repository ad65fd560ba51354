"""Errors of the readers, beneath every reading module."""

from __future__ import annotations


class Damaged(ValueError):
    """The file's bytes disagree with its header (cut off, bit-flipped, or a failed write)."""
