"""How far to trust each organ of a label map: cut off by the scan, and the network's confidence.

- *Cut off by the scan*: an organ that touches the scan's first or last slice or the edge of the field of view
  continues outside it; its volume and extent are those of the part in view (TotalSegmentator leaves such organs
  out of its statistics). :func:`cut_off` names the edges it touches.
- *Confidence*: the network's mean probability of the organ over the organ's voxels (on the working grid), in
  [0, 1]; for an organ the labellers drew (the starter's lungs and bone) it is how much the network agrees with
  them. An organ under :data:`LOW_CONFIDENCE` is marked "check": look at it before using it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["cut_off", "cut_off_notes", "organ_confidence", "PredictReport", "reporting_predict", "LOW_CONFIDENCE",
           "CUT_OFF_TEXT"]

#: an organ whose confidence is below this is marked "check"
LOW_CONFIDENCE = 0.75

#: the words used wherever a cut-off organ is flagged (statistics, report, DICOM descriptions)
CUT_OFF_TEXT = "cut off by the scan"


def cut_off(bbox_index, shape) -> list[str]:
    """The edges of the scan an organ touches: ``"first slice"``, ``"last slice"``, ``"field of view"``.

    Parameters
    ----------
    bbox_index : ((z, y, x), (z, y, x))
        First and last voxel of the organ (``organ_statistics``' ``bbox_index``).
    shape : 3 ints
        The scan's shape.
    """
    (z0, y0, x0), (z1, y1, x1) = bbox_index
    out = []
    if z0 <= 0:
        out.append("first slice")
    if z1 >= shape[0] - 1:
        out.append("last slice")
    if min(y0, x0) <= 0 or y1 >= shape[1] - 1 or x1 >= shape[2] - 1:
        out.append("field of view")
    return out


def cut_off_notes(labels: np.ndarray) -> dict[int, str]:
    """``{value: "cut off by the scan (last slice, field of view)"}`` for every organ of a label map that touches
    an edge of the scan (DICOM segment and ROI descriptions)."""
    from scipy import ndimage

    arr = np.asarray(labels)
    if arr.dtype.kind not in "iu" or arr.size == 0 or arr.max() <= 0:
        return {}
    out = {}
    for value, box in enumerate(ndimage.find_objects(arr), start=1):
        if box is None:
            continue
        edges = cut_off(([s.start for s in box], [s.stop - 1 for s in box]), arr.shape)
        if edges:
            out[value] = f"{CUT_OFF_TEXT} ({', '.join(edges)})"
    return out


def organ_confidence(probabilities, labels_work: np.ndarray) -> dict[int, float]:
    """Mean probability of each organ over its voxels.

    Parameters
    ----------
    probabilities : ndarray or torch.Tensor (C, Z, Y, X)
        Class probabilities (summing to 1 over C).
    labels_work : ndarray (Z, Y, X) of int
        The label map on the same grid.

    Returns
    -------
    dict value -> float, for every value in 1..C-1 present
    """
    import torch

    probs = torch.as_tensor(probabilities)
    lab = torch.from_numpy(np.ascontiguousarray(labels_work).astype(np.int64))
    out = {}
    for v in range(1, probs.shape[0]):
        mask = lab == v
        n = int(mask.sum())
        if n:
            out[v] = float(probs[v][mask].double().mean())
    return out


@dataclass
class PredictReport:
    """What :func:`napari_ctorgans.predict` did beyond the labels (``return_report=True``).

    Attributes
    ----------
    removed : list of Removal
        Voxels removed where the organ cannot be (:func:`napari_ctorgans.plausible`), per organ and reason.
    confidence : dict value -> float
        The network's mean probability of each organ over its voxels (empty with ``engine="openvino"``); not
        for the organs taken from the labellers.
    labelled : list of int
        Organs (values) taken from the automatic labellers instead of the network (``labelers=``).
    """

    removed: list = field(default_factory=list)
    confidence: dict = field(default_factory=dict)
    labelled: list = field(default_factory=list)

    def check(self) -> list[int]:
        """Organs (values) whose confidence is below :data:`LOW_CONFIDENCE`."""
        return [v for v, c in self.confidence.items() if c < LOW_CONFIDENCE]

    def lines(self, notes: dict | None = None) -> list[str]:
        """One line per organ (its confidence, "check" when low, and its entry of ``notes``, such as
        :func:`cut_off_notes`) and one per removal, in the user's words."""
        from .organs import ORGANS

        notes = notes or {}
        out = []
        for v in sorted(set(self.confidence) | set(self.labelled) | set(notes)):
            name = ORGANS[v].name if v in ORGANS else f"label {v}"
            c = self.confidence.get(v)
            said = (["from the automatic labellers"] if v in self.labelled else []) + (
                [] if c is None else [f"confidence {c:.2f}" + (" - check" if c < LOW_CONFIDENCE else "")])
            out.append(f"{name}: " + "; ".join(said + ([notes[v]] if v in notes else [])))
        return out + [str(r) for r in self.removed]


def reporting_predict(sink: list):
    """:func:`napari_ctorgans.predict` that returns the labels as usual and appends ``report.lines(notes=...)``
    (confidence, cut off by the scan, removals; :meth:`PredictReport.lines`) to ``sink`` (the Predict tab's
    status line)."""

    def run(volume, model=None, **options):
        import napari_ctorgans as ct

        labels, report = ct.predict(volume, model, return_report=True, **options)
        sink.append(report.lines(notes=cut_off_notes(labels)))
        return labels

    return run
