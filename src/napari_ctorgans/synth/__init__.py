"""Domain-randomised CT phantoms (after SynthSeg): random anatomy, contrast phase, field of view and scanner.

:func:`make_random_phantom` draws a body (habitus, fat, organ shapes bent by a smooth random field, spleen, stomach,
bowel, vessels, the abdominal wall and the deep muscles of the back and pelvis, a full skeleton, the couch), a field of view (whole trunk, chest, abdomen, upper abdomen,
pelvis, thin slab, tight crops), a contrast phase and a scanner (blur, slice thickness, noise, bias, metal, 12-bit
clipping), and renders it with CT-ORG labels. Its purpose is training models that transfer to real CT.
"""

from __future__ import annotations

import numpy as np

from ..volume import Volume, as_spacing
from .anatomy import LABEL_OF, TISSUES, Z_RANGE, Anatomy, body_masks, coordinates
from .organs import bladder, bowel, kidneys, liver, thorax, upper_left
from .render import HU_RANGES, render
from .skeleton import couch, pelvis, ribs, spine

__all__ = ["make_random_phantom", "tissue_map", "ANATOMY_VERSIONS", "TISSUES", "HU_RANGES", "FIELDS_OF_VIEW"]

#: anatomy versions of the phantoms
ANATOMY_VERSIONS = {
    2: "abdominal wall, psoas and paraspinal muscle as one block behind the spine (the default; the starter's last "
       "stage trains on these as well)",
    3: "adds the deep muscles of the back and pelvis (erector spinae, gluteal) in their own fat planes, with HU down "
       "to fatty muscle; a deeper back; the bladder's base behind the pubic symphysis and fillings up to 600 mL (the "
       "starter model's phantoms)",
    4: "version 3's anatomy; in a third of the images every soft tissue (organs, muscle, bowel, vessels) gets an "
       "arbitrary HU between -30 and 230 instead of its physiological range, after SynthSeg's random contrast (tried "
       "for the starter model and not kept: docs/starter-model.md)",
}
#: field-of-view kinds and how often each is drawn
FIELDS_OF_VIEW = {"trunk": 0.15, "chest": 0.2, "abdomen": 0.3, "upper-abdomen": 0.15, "pelvis": 0.12, "slab": 0.08}


def _z_range(a: Anatomy, kind: str, rng: np.random.Generator, dz: float) -> tuple[float, float]:
    u = rng.uniform
    ranges = {
        "trunk": (Z_RANGE[0] + u(0, 60), Z_RANGE[1] - u(0, 40)),
        "chest": (a.dia_r - u(40, 120), a.lung_top + u(-10, 30)),
        "abdomen": (u(-200, -150), a.dia_r + u(20, 80)),
        "upper-abdomen": (a.kid_z - u(40, 90), a.dia_r + u(20, 60)),
        "pelvis": (u(-240, -180), a.kid_z + u(-40, 20)),
    }
    if kind == "slab":
        lo = u(-180, a.lung_top - 60)
        return lo, lo + dz * int(rng.integers(10, 26))
    return ranges[kind]


def make_random_phantom(*, seed: int = 0, spacing=3.0, field_of_view: str | None = None, anatomy: int = 2
                        ) -> tuple[Volume, np.ndarray]:
    """A domain-randomised CT with CT-ORG labels.

    Parameters
    ----------
    seed : int
        Every random choice (anatomy, field of view, contrast, scanner) follows from it.
    spacing : float or 3 floats
        Voxel size in mm (z, y, x).
    field_of_view : str, optional
        One of :data:`FIELDS_OF_VIEW`; default drawn at random.
    anatomy : int
        Version of the anatomy, one of :data:`ANATOMY_VERSIONS` (2, the default, which earlier phantoms were made
        with; the starter model trains on version 3, and on versions 2 and 3 in its last stage; 4: tried, not kept).

    Returns
    -------
    (Volume, ndarray)
        int16 HU volume (metadata: seed, phase, field of view) and uint8 labels (0 background, 1 liver, 2 bladder,
        3 lungs, 4 kidneys, 5 bone).

    Examples
    --------
    >>> from napari_ctorgans.synth import make_random_phantom
    >>> vol, labels = make_random_phantom(seed=3)
    >>> vol.shape == labels.shape
    True
    """
    sp = np.asarray(as_spacing(spacing), dtype=np.float64)
    rng = np.random.default_rng([seed, 16])
    tissue, a, kind = tissue_map(rng, sp, field_of_view, anatomy)
    shape = tissue.shape
    hu = render(tissue, a, sp, rng)
    labels = LABEL_OF[tissue]
    extent = np.asarray(shape) * sp
    vol = Volume(np.round(hu).astype(np.int16), spacing=tuple(sp), origin=tuple(-extent / 2 + sp / 2),
                 source_orientation="LPS",
                 metadata={"phantom_seed": seed, "phase": a.phase, "field_of_view": kind})
    return vol, labels


def tissue_map(rng: np.random.Generator, spacing, field_of_view: str | None = None, anatomy: int = 2
               ) -> tuple[np.ndarray, Anatomy, str]:
    """The map of tissue ids (:data:`TISSUES`) of one random body, its :class:`Anatomy` and its field of view.

    ``spacing`` is (z, y, x) in mm; every random choice is drawn from ``rng`` (:func:`make_random_phantom` then
    renders the map with the same generator).
    """
    if anatomy not in ANATOMY_VERSIONS:
        raise ValueError(f"anatomy must be one of {sorted(ANATOMY_VERSIONS)}, got {anatomy!r}")
    sp = np.asarray(spacing, dtype=np.float64)
    a = Anatomy(rng, anatomy)
    a.spacing = tuple(float(v) for v in sp)
    kind = field_of_view or str(rng.choice(list(FIELDS_OF_VIEW), p=list(FIELDS_OF_VIEW.values())))
    if kind not in FIELDS_OF_VIEW:
        raise ValueError(f"field_of_view must be one of {list(FIELDS_OF_VIEW)}, got {kind!r}")
    z0, z1 = _z_range(a, kind, rng, sp[0])
    tight = rng.uniform() < 0.2
    half_x = a.ax * rng.uniform(0.7, 0.95) if tight else a.ax * 1.25 + (60 if a.arms_down else 15)
    half_y = a.ay * rng.uniform(0.8, 1.0) if tight else a.ay + 75
    shape = (max(8, int(round((z1 - z0) / sp[0]))), int(round(2 * half_y / sp[1])), int(round(2 * half_x / sp[2])))
    z, y, x = coordinates(shape, sp, rng)
    z = z + (z0 - Z_RANGE[0])
    roll = np.deg2rad(rng.uniform(-7, 7))
    y, x = np.cos(roll) * y - np.sin(roll) * x, np.sin(roll) * y + np.cos(roll) * x
    tissue = np.zeros(shape, dtype=np.uint8)
    body, cavity = body_masks(a, z, y, x, tissue)
    thorax(a, z, y, x, tissue, cavity)
    liver(a, z, y, x, tissue, cavity)
    upper_left(a, z, y, x, tissue, cavity)
    kidneys(a, z, y, x, tissue, cavity)
    bladder(a, z, y, x, tissue, cavity)
    bowel(a, z, y, x, tissue, cavity)
    spine(a, z, y, x, tissue, body)
    ribs(a, z, y, x, tissue, body)
    pelvis(a, z, y, x, tissue, body)
    couch(a, z, y, x, tissue)
    del z, y, x
    return tissue, a, kind
