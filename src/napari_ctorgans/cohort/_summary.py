"""The summary of a cohort run: one :class:`CohortRow` per scan, printed as a table and saved as CSV."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

_STATUSES = ("ok", "skipped", "failed")


@dataclass
class CohortRow:
    """Outcome of one scan."""

    input: str
    output: str
    status: str  # "ok", "skipped" or "failed"
    error: str = ""
    seconds: float = 0.0


class CohortSummary(list):
    """The rows of a cohort run (a list of :class:`CohortRow`); prints as a table and saves as CSV."""

    csv_path: Path | None = None

    def counts(self) -> dict[str, int]:
        """Number of scans per status."""
        return {s: sum(1 for r in self if r.status == s) for s in _STATUSES}

    @property
    def failed(self) -> list[CohortRow]:
        return [r for r in self if r.status == "failed"]

    def table(self, *, width: int = 60) -> str:
        """A plain-text table: one line per scan, then the totals."""

        def cut(text: str, n: int, tail: bool) -> str:
            if len(text) <= n:
                return text
            return "..." + text[-(n - 3):] if tail else text[: n - 3] + "..."

        width = min(width, max([len("input")] + [len(r.input) for r in self]))
        lines = [f"{'input':<{width}}  {'status':<7}  {'seconds':>8}  error"]
        for r in self:
            error = r.error.splitlines()[0] if r.error else ""
            lines.append(f"{cut(r.input, width, True):<{width}}  {r.status:<7}  {r.seconds:8.1f}  "
                         f"{cut(error, 120, False)}")
        c = self.counts()
        lines.append(f"{len(self)} scans: {c['ok']} ok, {c['skipped']} skipped, {c['failed']} failed")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """The rows as CSV text; also written to ``path`` when given (verified and atomically, replacing an
        earlier summary: a failed write leaves it unchanged)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=[f.name for f in fields(CohortRow)])
        writer.writeheader()
        for r in self:
            writer.writerow({**asdict(r), "seconds": f"{r.seconds:.3f}"})
        text = buf.getvalue()
        if path is not None:
            from ..io import write_bytes_atomic

            write_bytes_atomic(path, text.encode("utf-8"), overwrite=True)
        return text

    @classmethod
    def read_csv(cls, path: str | os.PathLike) -> CohortSummary:
        """Read a summary written by :meth:`to_csv`."""
        with open(path, newline="") as fh:
            rows = [CohortRow(r["input"], r["output"], r["status"], r["error"], float(r["seconds"]))
                    for r in csv.DictReader(fh)]
        return cls(rows)
