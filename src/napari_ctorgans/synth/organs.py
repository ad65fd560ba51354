"""The organs of a randomised anatomy, drawn into a tissue map (see :mod:`.anatomy`)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .anatomy import Anatomy, T, ellipsoid


def diaphragm(a: Anatomy, y, x):
    """Height (mm) of the diaphragm under each (y, x): two domes, lower at the back and sides."""
    right = a.dia_r - ((x + 70) / 95) ** 2 * 40 - ((y + 10) / 90) ** 2 * 25
    left = a.dia_l - ((x - 70) / 95) ** 2 * 40 - ((y + 10) / 90) ** 2 * 25
    return np.maximum(np.maximum(right, left), a.dia_r - 60 - 0.25 * np.maximum(y, 0))


def thorax(a: Anatomy, z, y, x, tissue, cavity) -> None:
    """Lungs with vessels, heart, trachea and bronchi, great vessels."""
    rng, u = a.rng, a.rng.uniform
    dia = diaphragm(a, y, x)
    above = cavity & (z > dia) & (z < a.lung_top)
    taper = np.clip((a.lung_top - z) / 120.0, 0.25, 1.0)  # the apices narrow
    ribcage = ((x / (a.ax * 0.9 * taper + 1)) ** 2 + ((y + 5) / (a.ay * 0.92)) ** 2) <= 1.0
    heart_c = (dia.mean() + u(45, 75), -a.ay * u(0.2, 0.4), u(5, 35))
    heart = ellipsoid(z, y, x, heart_c, (u(50, 70), u(40, 55), u(50, 70)), angle_deg=u(-30, -10)) & above
    mediastinum = (np.abs(x - 5) < u(18, 30)) & (y < a.spine_y + 25)
    lungs = above & ribcage & ~heart & ~mediastinum
    lungs &= ~(((x / 25) ** 2 + ((y - a.spine_y) / 25) ** 2) <= 1.0)  # the spine's column
    tissue[above & ~lungs] = T["soft"]
    tissue[lungs] = T["lung"]
    tissue[heart] = T["blood"]
    # vessels: a branching look from thresholded smooth noise, denser at the hila
    n = ndimage.gaussian_filter(rng.standard_normal(tissue.shape).astype(np.float32), 1.2)
    hila = np.exp(-((np.abs(x - 5) - 45) / 60.0) ** 2)
    vessel = lungs & (np.abs(n) < u(0.02, 0.05) * (1 + 2 * hila))
    tissue[vessel] = T["lung_vessel"]
    # trachea and main bronchi
    carina = heart_c[0] + u(50, 80)
    trachea = (((x - 3) / 9) ** 2 + ((y - a.spine_y + 40) / 10) ** 2 <= 1.0) & (z > carina) & above
    tissue[trachea] = T["airway"]
    for side in (-1, 1):
        t = np.clip((carina - z) / 40.0, 0, 1)
        bx, by = 3 + side * 40 * t, a.spine_y - 40 + 5 * t
        bron = (((x - bx) / 6) ** 2 + ((y - by) / 6) ** 2 <= 1.0) & (z <= carina) & (z > carina - 40) & above
        tissue[bron] = T["airway"]
    # aorta: arch above the heart, descending left of the spine into the abdomen
    desc = (((x - 18) / 12) ** 2 + ((y - a.spine_y + 30) / 12) ** 2 <= 1.0) & (z > -20) & (z < carina)
    tissue[desc & cavity] = T["aorta"]
    asc = ((((x + 10) / 14) ** 2 + ((y + a.ay * 0.25) / 14) ** 2) <= 1.0) & (z > heart_c[0]) & (z < carina + 10)
    tissue[asc & above] = T["aorta"]


def liver(a: Anatomy, z, y, x, tissue, cavity) -> None:
    """Liver (right lobe, left lobe across the midline, vessels), gallbladder, under the right dome."""
    u = a.rng.uniform
    dia = diaphragm(a, y, x)
    below = cavity & (z <= dia - 2)
    s = u(0.8, 1.2)
    top = a.dia_r - 5
    right = ellipsoid(z, y, x, (top - 75 * s, -a.ay * 0.05, -a.ax * 0.42), (80 * s, a.ay * 0.7, a.ax * 0.42))
    left = ellipsoid(z, y, x, (top - 40 * s, -a.ay * 0.45, a.ax * 0.05), (38 * s, a.ay * 0.35, a.ax * u(0.25, 0.5)))
    organ = (right | left) & below & (z > top - 170 * s)
    tissue[organ] = T["liver"]
    n = ndimage.gaussian_filter(a.rng.standard_normal(tissue.shape).astype(np.float32), 1.5)
    tissue[organ & (np.abs(n) < u(0.01, 0.04))] = T["liver_vessel"]
    if u() < 0.7:
        gb = ellipsoid(z, y, x, (top - 150 * s, -a.ay * 0.45, -a.ax * 0.3), (u(20, 40), u(10, 18), u(10, 18)))
        tissue[gb & below] = T["gallbladder"]


def upper_left(a: Anatomy, z, y, x, tissue, cavity) -> None:
    """Spleen (soft tissue as dense as liver) and stomach (wall, food or fluid, an air-fluid level)."""
    u = a.rng.uniform
    dia = diaphragm(a, y, x)
    below = cavity & (z <= dia - 2) & (tissue == T["fat"])
    sz = a.dia_l - u(40, 70)
    spleen = ellipsoid(z, y, x, (sz, a.ay * 0.35, a.ax * 0.6), (u(35, 60), u(30, 50), u(15, 28)), angle_deg=35)
    tissue[spleen & below] = T["spleen"]
    below &= tissue == T["fat"]
    st_c, st_r = (a.dia_l - u(40, 80), -a.ay * 0.2, a.ax * 0.35), (u(35, 60), u(30, 50), u(30, 50))
    stomach = ellipsoid(z, y, x, st_c, st_r, angle_deg=u(-30, 30)) & below
    inner = ellipsoid(z, y, x, st_c, tuple(r - 5 for r in st_r)) & stomach
    tissue[stomach] = T["stomach_wall"]
    tissue[inner] = T["stomach_content"]
    tissue[inner & (z > st_c[0] + u(-10, 30)) & (y < st_c[1])] = T["gas"]


def kidneys(a: Anatomy, z, y, x, tissue, cavity) -> None:
    """Kidneys: bean shapes turned to face their hilum, cortex, medulla and pelvis, in perirenal fat."""
    u = a.rng.uniform
    for side in (-1, 1):
        if u() < 0.04:
            continue  # a single kidney
        s = u(0.8, 1.2)
        c = (a.kid_z + (15 if side > 0 else 0) + u(-20, 20), a.spine_y - u(5, 25), side * a.ax * u(0.38, 0.52))
        r = (52 * s, 27 * s, 31 * s)
        ang = side * u(20, 45)
        fat = ellipsoid(z, y, x, c, tuple(v + u(6, 20) for v in r), ang) & cavity & (tissue == T["fat"])
        outline = ellipsoid(z, y, x, c, r, ang) & fat
        hilum = ellipsoid(z, y, x, (c[0], c[1] - 8, c[2] - side * r[2] * 0.9), (r[0] * 0.35, 9, 12), ang)
        kidney = outline & ~hilum
        medulla = ellipsoid(z, y, x, c, tuple(v * u(0.55, 0.72) for v in r), ang) & kidney
        pelvis = ellipsoid(z, y, x, (c[0], c[1], c[2] - side * r[2] * 0.45), (r[0] * 0.3, 7, 9), ang) & kidney
        tissue[fat] = T["fat"]
        tissue[kidney] = T["kidney_cortex"]
        tissue[medulla] = T["kidney_medulla"]
        tissue[pelvis] = T["renal_pelvis"]


def bladder(a: Anatomy, z, y, x, tissue, cavity) -> None:
    """Bladder (urine in a thin wall, any filling) low and anterior: its base behind the pubic symphysis, rising
    above the femoral heads as it fills."""
    u = a.rng.uniform
    r = a.bladder_r
    low, rise = (-145, 0.85) if a.version >= 3 else (-150, 0.6)
    c = (low + r[0] * rise + u(-10, 10), -a.ay * 0.35 + u(-10, 10), u(-10, 10))
    outer = ellipsoid(z, y, x, c, tuple(v + 3 for v in r)) & cavity
    tissue[ellipsoid(z, y, x, c, tuple(v + u(6, 15) for v in r)) & cavity] = T["fat"]
    tissue[outer] = T["bladder_wall"]
    tissue[ellipsoid(z, y, x, c, r) & cavity] = T["urine"]


def bowel(a: Anatomy, z, y, x, tissue, cavity) -> None:
    """Bowel loops and colon in the free abdominal cavity: walls, fluid, gas, mesenteric fat between."""
    rng, u = a.rng, a.rng.uniform
    dia = diaphragm(a, y, x)
    if a.version >= 3:
        muscles(a, z, y, x, tissue, cavity)
    else:  # paraspinal behind the spine, psoas beside it (onto fat only: organs stay whole)
        fat = cavity & (tissue == T["fat"])
        tissue[fat & (y > a.spine_y + 12) & (np.abs(x) < a.ax * u(0.4, 0.55))] = T["muscle"]
        for side in (-1, 1):
            grow = np.clip((a.kid_z + 60 - z) / 200, 0.2, 1.0)
            psoas = (((x - side * 38) / (22 * grow)) ** 2 + ((y - a.spine_y + 5) / (18 * grow)) ** 2 <= 1.0)
            tissue[psoas & fat & (z < a.kid_z + 60) & (z > -120)] = T["muscle"]
    free = cavity & (tissue == T["fat"]) & (z < dia - 10) & (z > -150) & (y < a.spine_y - 10)
    sp = np.asarray(a.spacing, dtype=np.float32)
    n = ndimage.gaussian_filter(rng.standard_normal(tissue.shape).astype(np.float32), u(6.0, 10.0) / sp)
    n /= n.std() + 1e-6
    w = u(0.3, 0.6)
    lumen = free & (np.abs(n) < w)
    wall = free & (np.abs(n) < w + 0.25) & ~lumen
    tissue[wall] = T["bowel_wall"]
    tissue[lumen] = T["bowel_fluid"]
    m = ndimage.gaussian_filter(rng.standard_normal(tissue.shape).astype(np.float32), 10.0 / sp)
    tissue[lumen & (m > np.quantile(m, u(0.8, 0.97)))] = T["gas"]
    # inferior vena cava, pancreas
    ivc = ((x + 22) / 13) ** 2 + ((y - a.spine_y + 30) / 10) ** 2 <= 1.0
    soft_fill = np.isin(tissue, (T["fat"], T["bowel_wall"], T["bowel_fluid"], T["gas"]))
    tissue[ivc & cavity & soft_fill & (z > -20) & (z < dia)] = T["ivc"]
    pan = ellipsoid(z, y, x, (a.kid_z + 40, a.spine_y - 50, 20), (14, 12, 65), angle_deg=-15)
    tissue[pan & cavity & np.isin(tissue, (T["fat"], T["bowel_wall"], T["bowel_fluid"]))] = T["pancreas"]


def muscles(a: Anatomy, z, y, x, tissue, cavity) -> None:
    """Deep muscles, each in its own fat plane (onto fat and the muscle wall only: organs stay whole).

    Behind and beside the spine (erector spinae, quadratus lumborum), the psoas, and in the pelvis the gluteal and
    iliac muscles. Their HU is drawn apart from the abdominal wall's, down to fatty-infiltrated muscle: on native CT
    they look like kidneys and bladder, so only shape and position tell them apart.
    """
    u = a.rng.uniform
    soft = np.isin(tissue, (T["fat"], T["muscle"])) & (cavity | (tissue == T["muscle"]))  # not subcutaneous fat
    fat = cavity & (tissue == T["fat"])
    tissue[fat & (y > a.spine_y + 12) & (np.abs(x) < a.ax * u(0.4, 0.55))] = T["deep_muscle"]
    depth = a.ay - a.fat - a.spine_y  # from the spine's centre to the subcutaneous fat, behind
    for side in (-1, 1):
        grow = np.clip((a.kid_z + 60 - z) / 200, 0.2, 1.0)
        psoas = (((x - side * 38) / (22 * grow)) ** 2 + ((y - a.spine_y + 5) / (18 * grow)) ** 2 <= 1.0)
        tissue[psoas & fat & (z < a.kid_z + 60) & (z > -120)] = T["deep_muscle"]
        c = (0.0, a.spine_y + depth * u(0.5, 0.6), side * u(22, 34))
        rx, ry = u(16, 28), depth * u(0.3, 0.42)
        erector = ((x - c[2]) / rx) ** 2 + ((y - c[1]) / ry) ** 2
        erector = np.broadcast_to(erector, tissue.shape)
        rows = (z > -90) & (z < a.lung_top - 40)
        plane = u(1.5, 4.0)
        tissue[soft & rows & (erector <= ((rx + plane) / rx) ** 2)] = T["fat"]
        tissue[soft & rows & (erector <= 1.0)] = T["deep_muscle"]
        gluteal = ellipsoid(z, y, x, (-90 + u(-20, 20), a.ay * u(0.25, 0.45), side * a.ax * u(0.55, 0.75)),
                            (u(70, 110), a.ay * u(0.35, 0.5), a.ax * u(0.25, 0.38)))
        tissue[soft & gluteal & (z < 10)] = T["deep_muscle"]
