"""Plausible sizes of whole organs and the growth settings of the prompt engine, per CT-ORG label value."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class OrganPrompting(NamedTuple):
    """How the prompt engine grows one organ."""

    size_ml: tuple[float, float]  # plausible volume of the whole organ in an adult (mL); flagged outside
    part_max_ml: float  # largest connected piece (one kidney)
    reach_mm: float  # half-size of the box around a click where the organ may grow
    radii_mm: tuple[float, ...]  # bridge half-widths tried in turn to cut leaks (see region.grow)
    grow_max_ml: float  # growth from clicks stops cutting bridges once the region is at most this large
    min_half_hu: float  # narrowest half-width of the HU band
    band_k: float  # half-width of the HU band in robust standard deviations of the values around the clicks
    open_side: str = ""  # "above": the band has no upper end (bone); "below": no lower end (lungs)
    hu_limits: tuple[float, float] = (-np.inf, np.inf)  # the band never reaches beyond these (lungs: air only)


#: label value -> settings. Sizes: adult liver 0.6-3.5 L, one kidney 60-350 mL, bladder up to about 1 L; lungs and
#: bone are rarely whole in an abdominal scan, so only their upper bound is checked.
PROMPTING: dict[int, OrganPrompting] = {
    1: OrganPrompting((600.0, 3500.0), 3500.0, 150.0, (6.0, 9.0, 12.0, 15.0), 2500.0, 30.0, 3.0),
    2: OrganPrompting((10.0, 1000.0), 1000.0, 90.0, (4.5, 6.0, 9.0, 12.0), 800.0, 25.0, 3.0),
    3: OrganPrompting((0.0, 9000.0), 9000.0, 220.0, (0.0, 3.0, 6.0), 8000.0, 60.0, 3.0, "below", (-np.inf, -400.0)),
    4: OrganPrompting((60.0, 700.0), 350.0, 80.0, (3.0, 4.5, 6.0, 9.0), 300.0, 20.0, 2.5),
    5: OrganPrompting((0.0, 15000.0), 15000.0, 250.0, (0.0,), 15000.0, 80.0, 3.0, "above", (120.0, np.inf)),
}
