"""The skeleton of a randomised anatomy (cortex and marrow), and the exam couch."""

from __future__ import annotations

import numpy as np

from .anatomy import Anatomy, T, ellipsoid


def _bone(tissue, mask, cortex_mm: float, r2, scale: float) -> None:
    """Cortex where ``r2`` (normalised radius squared) is near 1, marrow inside."""
    tissue[mask] = T["cortical_bone"]
    tissue[mask & (r2 < (1 - cortex_mm / scale) ** 2)] = T["marrow"]


def spine(a: Anatomy, z, y, x, tissue, body) -> None:
    """Vertebrae (bodies, discs, canal, spinous and transverse processes) and the sacrum."""
    u = a.rng.uniform
    cy = a.spine_y + 12 * np.clip((z - 250) / 200, 0, 1)  # kyphosis: the thoracic spine lies further back
    height = u(24, 30)
    disc = u(6, 10)
    period = height + disc
    phase = np.mod(z - u(0, period), period)
    in_body = phase < height
    rad = np.where(z < 200, u(18, 24), u(14, 18))
    r2 = (x / rad) ** 2 + ((y - cy) / (rad * 0.85)) ** 2
    column = (r2 <= 1.0) & (z > -40) & (z < a.lung_top)
    tissue[column & ~in_body & body] = T["disc"]
    _bone(tissue, column & in_body & body, u(2, 3.5), r2, rad)
    canal = ((x / 9) ** 2 + ((y - cy - rad - 10) / 9) ** 2 <= 1.0) & (z > -40) & (z < a.lung_top)
    arch = ((x / 16) ** 2 + ((y - cy - rad - 10) / 16) ** 2 <= 1.0) & (z > -40) & (z < a.lung_top) & in_body
    tissue[arch & ~canal & body] = T["cortical_bone"]
    tissue[canal & body] = T["csf"]
    spinous = (np.abs(x) < 4) & (y > cy + rad + 20) & (y < cy + rad + u(35, 55)) & in_body & (z > -40)
    trans = (np.abs(x) < u(35, 45)) & (np.abs(y - cy - rad) < 5) & (phase < height * 0.5) & (z > -40)
    tissue[(spinous | trans) & body & (z < a.lung_top)] = T["cortical_bone"]
    sac = (x / (45 * np.clip((z + 120) / 100, 0.3, 1))) ** 2 + ((y - cy - 5) / 20) ** 2
    _bone(tissue, (sac <= 1.0) & (z > -120) & (z <= -40) & body, 3, sac, 30)


def ribs(a: Anatomy, z, y, x, tissue, body) -> None:
    """Twelve pairs of ribs sloping down to the front, costal cartilage, the sternum."""
    u = a.rng.uniform
    top = a.lung_top - u(15, 35)
    gap = u(20, 27)
    phi = np.arctan2(x, a.spine_y - y)  # 0 at the spine, +-pi at the front
    drop = u(35, 70) * (np.abs(phi) / np.pi) ** 1.5
    ring = (x / (a.ax * 0.93)) ** 2 + ((y + 5) / (a.ay * 0.95)) ** 2
    shell = (ring > u(0.78, 0.84)) & (ring <= 0.95) & body
    for k in range(12):
        zc = top - k * gap - drop
        rib = shell & (np.abs(z - zc) < u(4, 6))
        front = np.abs(phi) > np.pi * u(0.7, 0.8)
        tissue[rib & ~front] = T["cortical_bone"]
        tissue[rib & ~front & (np.abs(z - zc) < 2.0)] = T["marrow"]
        tissue[rib & front] = T["cartilage"]
    st = (np.abs(x) < u(12, 18)) & (np.abs(y + a.ay * 0.9) < 7) & (z < top) & (z > top - u(160, 200))
    _bone(tissue, st & body, 2.5, (x / 15) ** 2, 15)
    for side in (-1, 1):  # clavicles and scapulae at the top
        clav = (np.abs(z - top - 10) < 7) & (np.abs(y + a.ay * 0.7) < 8) & (np.abs(x) > 20) & (
            np.abs(x) < a.ax * 0.9) & (np.sign(x) == side)
        tissue[clav & body] = T["cortical_bone"]
        scap = (np.abs(y - a.spine_y - 20) < 5) & (np.abs(x - side * a.ax * 0.55) < a.ax * 0.3) & (
            z > top - 140) & (z < top + 10)
        tissue[scap & body] = T["cortical_bone"]


def pelvis(a: Anatomy, z, y, x, tissue, body) -> None:
    """Iliac wings, pubis, acetabula, femoral heads, necks and shafts."""
    u = a.rng.uniform
    w = a.ax * u(0.62, 0.75)
    ring = (x / w) ** 2 + ((y - a.spine_y * 0.3) / (a.ay * 0.75)) ** 2
    wing = (ring > u(0.72, 0.8)) & (ring <= 1.0) & (z > -110) & (z < 0) & (y > -a.ay * 0.2)
    tissue[wing & body] = T["cortical_bone"]
    tissue[wing & body & (ring > 0.8) & (ring < 0.93)] = T["marrow"]
    for side in (-1, 1):
        hc = (-115 + u(-8, 8), u(-10, 10), side * w * 0.85)
        hr = u(21, 26)
        head = ellipsoid(z, y, x, hc, (hr, hr, hr))
        r2 = ((z - hc[0]) ** 2 + (y - hc[1]) ** 2 + (x - hc[2]) ** 2) / hr ** 2
        _bone(tissue, head & body, 3, r2, hr)
        socket = ellipsoid(z, y, x, hc, (hr + 8,) * 3) & ~head & (z > hc[0] - 5)
        tissue[socket & body] = T["cortical_bone"]
        t = np.clip((hc[0] - z) / 40, 0, 1)  # neck: from the head down and out to the shaft
        fx = hc[2] + side * 30 * t
        fr = u(12, 16)
        shaft = ((x - fx) / fr) ** 2 + ((y - hc[1]) / fr) ** 2
        _bone(tissue, (shaft <= 1) & (z < hc[0]) & body, u(3, 5), shaft, fr)
        pub = ellipsoid(z, y, x, (hc[0] - 20, -a.ay * 0.5, side * w * 0.45), (12, 10, w * 0.45), side * 20)
        tissue[pub & body] = T["cortical_bone"]
        tissue[ellipsoid(z, y, x, (hc[0] - 20, -a.ay * 0.5, side * w * 0.45), (7, 5, w * 0.4), side * 20)
               & body] = T["marrow"]


def couch(a: Anatomy, z, y, x, tissue) -> None:
    """The exam couch under the patient: a plastic shell around foam or air (absent in some scans)."""
    u = a.rng.uniform
    if u() < 0.15:
        return
    y0 = a.ay + u(2, 25)
    depth, half = u(15, 45), u(150, 230)
    curve = (x / half) ** 2 * u(0, 30)
    shell = (y > y0 - curve) & (y < y0 + depth - curve) & (np.abs(x) < half)
    inner = (y > y0 + 3 - curve) & (y < y0 + depth - 3 - curve) & (np.abs(x) < half - 4)
    shell, inner = np.broadcast_to(shell, tissue.shape), np.broadcast_to(inner, tissue.shape)
    free = tissue == T["air"]
    tissue[shell & free] = T["couch_shell"]
    tissue[inner & free] = T["couch_foam"]
