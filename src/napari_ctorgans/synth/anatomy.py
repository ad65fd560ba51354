"""A randomised trunk anatomy as a map of tissues: the shapes of the domain-randomised phantoms.

Coordinates are millimetres in the canonical orientation of :mod:`napari_ctorgans.phantom` (axis 0 inferior ->
superior, axis 1 anterior -> posterior, axis 2 patient right -> left), with z = 0 at the top of the iliac crests.
Every organ is drawn in coordinates bent by one smooth random displacement field, so shapes vary organically while
organs keep their neighbours. Besides the five CT-ORG organs the map holds what makes real scans hard: spleen and
stomach beside the liver, bowel loops and gas, vessels, muscles, fat, discs, costal cartilage, the exam couch.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: tissue id -> (name, CT-ORG label)
TISSUES: dict[int, tuple[str, int]] = {
    0: ("air", 0), 1: ("fat", 0), 2: ("muscle", 0), 3: ("soft", 0), 4: ("bowel_wall", 0), 5: ("bowel_fluid", 0),
    6: ("gas", 0), 7: ("liver", 1), 8: ("liver_vessel", 1), 9: ("spleen", 0), 10: ("kidney_cortex", 4),
    11: ("kidney_medulla", 4), 12: ("renal_pelvis", 4), 13: ("urine", 2), 14: ("bladder_wall", 2), 15: ("lung", 3),
    16: ("lung_vessel", 3), 17: ("airway", 0), 18: ("blood", 0), 19: ("aorta", 0), 20: ("ivc", 0),
    21: ("cortical_bone", 5), 22: ("marrow", 5), 23: ("disc", 0), 24: ("stomach_wall", 0), 25: ("gallbladder", 0),
    26: ("couch_shell", 0), 27: ("couch_foam", 0), 28: ("pancreas", 0), 29: ("cartilage", 0), 30: ("metal", 0),
    31: ("csf", 0), 32: ("stomach_content", 0), 33: ("deep_muscle", 0),
}
T = {name: tid for tid, (name, _) in TISSUES.items()}
#: tissue id -> CT-ORG label, as a lookup table
LABEL_OF = np.zeros(256, dtype=np.uint8)
for _tid, (_name, _label) in TISSUES.items():
    LABEL_OF[_tid] = _label

#: contrast phases, in the order of the per-phase HU ranges of :mod:`.render`
PHASES = ("native", "arterial", "portal", "delayed")
#: z range (mm) of the whole trunk drawn: femurs to the shoulders
Z_RANGE = (-260.0, 560.0)


def _warp(shape, spacing, rng, amplitude: float, grid_mm: float) -> list[np.ndarray]:
    """A smooth random displacement field (mm), one array per axis, from random vectors on a coarse grid.

    Cubic on a quarter-resolution grid, then linear to full resolution (the field is smooth at that scale).
    """
    coarse = [max(2, int(round(n * s / grid_mm)) + 1) for n, s in zip(shape, spacing)]
    quarter = [max(2, (n + 3) // 4) for n in shape]
    out = []
    for _ in range(3):
        c = rng.uniform(-amplitude, amplitude, size=coarse).astype(np.float32)
        q = ndimage.zoom(c, [n / m for n, m in zip(quarter, coarse)], order=3, mode="nearest", grid_mode=True)
        f = ndimage.zoom(q, [n / m for n, m in zip(shape, q.shape)], order=1, mode="nearest", grid_mode=True)
        out.append(f[: shape[0], : shape[1], : shape[2]])
    return out


def coordinates(shape, spacing, rng, *, warp_mm: float = 12.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warped (z, y, x) coordinates in mm; z spans :data:`Z_RANGE`, y and x are centred on the body."""
    sp = np.asarray(spacing, dtype=np.float32)
    z = (Z_RANGE[0] + (np.arange(shape[0], dtype=np.float32) + 0.5) * sp[0])[:, None, None]
    y = ((np.arange(shape[1], dtype=np.float32) + 0.5) * sp[1] - shape[1] * sp[1] / 2)[None, :, None]
    x = ((np.arange(shape[2], dtype=np.float32) + 0.5) * sp[2] - shape[2] * sp[2] / 2)[None, None, :]
    dz, dy, dx = _warp(shape, sp, rng, warp_mm, 60.0)
    fz, fy, fx = _warp(shape, sp, rng, warp_mm / 3, 25.0)
    return z + dz + fz, y + dy + fy, x + dx + fx


def ellipsoid(z, y, x, centre, radii, angle_deg: float = 0.0):
    """Inside an ellipsoid (z, y, x radii in mm), optionally turned by ``angle_deg`` about the z axis."""
    cy, cx = y - centre[1], x - centre[2]
    if angle_deg:
        a = np.deg2rad(angle_deg)
        cy, cx = np.cos(a) * cy - np.sin(a) * cx, np.sin(a) * cy + np.cos(a) * cx
    return ((z - centre[0]) / radii[0]) ** 2 + (cy / radii[1]) ** 2 + (cx / radii[2]) ** 2 <= 1.0


class Anatomy:
    """The random choices of one body: sizes, levels and positions in mm (all drawn from ``rng``)."""

    def __init__(self, rng: np.random.Generator, version: int = 2) -> None:
        u = rng.uniform
        self.rng = rng
        self.version = version  # of the anatomy: see synth.ANATOMY_VERSIONS
        self.spacing = (3.0, 3.0, 3.0)  # of the grid drawn on (set by the caller)
        self.ax, self.ay = u(125, 185), u(90, 135)  # body half width / half depth at the waist
        self.fat = u(6, 40)  # subcutaneous fat (mm)
        self.wall = u(6, 16)  # abdominal wall muscle (mm)
        self.dia_r = u(270, 320)  # diaphragm domes (right higher)
        self.dia_l = self.dia_r - u(5, 30)
        self.lung_top = u(520, 560)
        self.kid_z = u(90, 140)
        if version >= 3:
            self.spine_y = max(self.ay - u(65, 95), 0.15 * self.ay)  # the back muscles lie behind it
            self.bladder_r = (u(12, 55), u(18, 60), u(22, 65))  # empty to full (about 600 mL)
        else:
            self.spine_y = self.ay - u(55, 80)
            self.bladder_r = (u(12, 45), u(18, 50), u(22, 55))
        self.phase = rng.choice(PHASES, p=[0.3, 0.2, 0.35, 0.15])
        self.arms_down = u() < 0.35


def body_masks(a: Anatomy, z, y, x, tissue: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skin (fat), the muscle wall and the inner cavity drawn into ``tissue``; returns (body, cavity)."""
    hips = 1.0 + 0.12 * np.exp(-(((z + 80) / 90) ** 2))
    chest = 1.0 + 0.05 * np.clip((z - 200) / 200, 0, 1)
    rx, ry = a.ax * hips * chest, a.ay * chest
    r2 = (x / rx) ** 2 + ((y + 5) / ry) ** 2
    body = r2 <= 1.0
    tissue[body] = T["fat"]
    s_in = lambda d: (x / np.maximum(rx - d, 10)) ** 2 + ((y + 5) / np.maximum(ry - d, 10)) ** 2 <= 1.0  # noqa: E731
    muscle = s_in(a.fat)
    tissue[muscle] = T["muscle"]
    cavity = s_in(a.fat + a.wall)
    tissue[cavity] = T["fat"]  # visceral fat, filled in below
    if a.arms_down:
        for side in (-1, 1):
            arm = ((x - side * (rx + 45)) / 40) ** 2 + ((y + 5) / 45) ** 2 <= 1.0
            arm &= (z > 120) & (z < 540)
            tissue[arm & (tissue == 0)] = T["muscle"]
            hum = (((x - side * (rx + 45)) / 13) ** 2 + ((y + 5) / 13) ** 2 <= 1.0) & arm
            tissue[hum] = T["cortical_bone"]
            tissue[hum & (((x - side * (rx + 45)) / 7) ** 2 + ((y + 5) / 7) ** 2 <= 1.0)] = T["marrow"]
    return body, cavity
