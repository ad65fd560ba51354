"""Reading the CT a sub-command works on, once for every sub-command: one DICOM series of a folder
(``--series``), and a label map or another image given where a CT belongs is refused before any work."""

from __future__ import annotations

import os

#: a CT has air: values this low (HU) are in every scan of a body
AIR_HU = -500


def refuse_label_map(vol, path: str | os.PathLike, option: str = "INPUT") -> None:
    """Refuse a label map given where a CT belongs (whole numbers 0..255, few values, no air).

    Raises
    ------
    ValueError
        Naming the option, the file, what it holds and the fix.
    """
    import numpy as np

    from ..io._read import looks_like_labels

    arr = vol.array
    if not looks_like_labels(vol) or float(arr.min()) < AIR_HU:
        return
    values = np.unique(arr[:: max(1, arr.shape[0] // 8)])
    shown = ", ".join(str(int(v)) for v in values[:12]) + (" ..." if len(values) > 12 else "")
    raise ValueError(
        f"{option} {path} is a label map, not a CT: it holds few whole numbers ({shown}) and no air (a CT has "
        f"values below {AIR_HU} HU). Give the CT scan itself as {option} (the label map goes to the option for "
        "labels, e.g. 'ctorgans stats LABELS --ct CT')"
    )


def read_ct(path: str | os.PathLike, *, series: str | None = None, resample_irregular: bool = False,
            option: str = "INPUT"):
    """``ct.read_volume(path, series=..., resample_irregular=...)``, refusing a label map (:func:`refuse_label_map`)
    and any other image that is no CT (``ct.check_ct``)."""
    from ..io import read_volume

    from ..ctcheck import check_ct

    vol = read_volume(path, series=series, resample_irregular=resample_irregular)
    refuse_label_map(vol, path, option)  # the likeliest mix-up, named as such
    check_ct(vol, name=f"{option} {path}")  # any other image that is no CT, before the work
    return vol
