"""Render a tissue map as CT: random HU per tissue and contrast phase, texture, scanner blur, noise, artefacts.

After SynthSeg (Billot et al.): every image gets its own draw of each tissue's intensity within physiological ranges
(from non-contrast to delayed phase), so a network trained on them learns shapes and neighbours, not one scanner's
grey values. Ranges are typical published attenuation values in HU.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .anatomy import PHASES, TISSUES, Anatomy, T

#: tissue -> (low, high) HU, one range for all phases or one per phase (native, arterial, portal, delayed)
HU_RANGES: dict[str, object] = {
    "air": (-1010, -980), "fat": (-125, -70), "muscle": (20, 65), "deep_muscle": (5, 60), "soft": (20, 55),
    "bowel_wall": (25, 70),
    "bowel_fluid": (-5, 30), "gas": (-1000, -850), "lung": (-900, -760), "airway": (-1000, -950),
    "cortical_bone": (450, 1300), "marrow": (110, 380), "disc": (60, 120), "csf": (0, 20), "cartilage": (90, 220),
    "couch_shell": (60, 350), "couch_foam": (-980, -700), "metal": (2500, 3071), "gallbladder": (-5, 25),
    "stomach_content": (-10, 60), "urine": (-5, 25), "bladder_wall": (25, 55),
    "liver": [(45, 70), (60, 95), (90, 145), (70, 105)],
    "liver_vessel": [(35, 50), (60, 120), (140, 210), (90, 130)],
    "spleen": [(40, 58), (80, 140), (100, 145), (80, 115)],
    "kidney_cortex": [(25, 42), (140, 230), (130, 210), (100, 180)],
    "kidney_medulla": [(25, 42), (40, 90), (120, 200), (120, 190)],
    "renal_pelvis": [(-5, 20), (-5, 20), (0, 40), (250, 1000)],
    "blood": [(35, 55), (200, 420), (130, 210), (90, 135)],
    "lung_vessel": [(-500, -250), (-400, 0), (-450, -100), (-500, -200)],
    "aorta": [(35, 55), (220, 450), (130, 210), (90, 135)],
    "ivc": [(35, 55), (60, 110), (120, 190), (90, 135)],
    "pancreas": [(30, 55), (90, 140), (80, 130), (60, 100)],
    "stomach_wall": [(30, 50), (70, 130), (70, 120), (60, 100)],
}


#: anatomy version 2 (no deep muscles): its muscle range
_V2_RANGES = {"muscle": (35, 65)}
#: from anatomy version 4: how often an image gets arbitrary soft-tissue contrast (SynthSeg's random intensities),
#: the tissues it redraws and the HU range each is drawn from; air, fat, lungs, bone and cartilage keep theirs
ARBITRARY_CONTRAST = (1 / 3, ("muscle", "deep_muscle", "soft", "bowel_wall", "bowel_fluid", "liver", "liver_vessel",
                              "spleen", "kidney_cortex", "kidney_medulla", "renal_pelvis", "urine", "bladder_wall",
                              "blood", "aorta", "ivc", "pancreas", "stomach_wall", "stomach_content", "gallbladder",
                              "csf"), (-30.0, 230.0))


def tissue_means(a: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """One mean HU per tissue id for this image (its contrast phase; a few tissues change at random)."""
    lut = np.zeros(256, dtype=np.float32)
    phase = PHASES.index(a.phase)
    for tid, (name, _) in TISSUES.items():
        if a.version < 3 and name == "deep_muscle":
            continue
        r = (_V2_RANGES if a.version < 3 else HU_RANGES).get(name, HU_RANGES.get(name, (0, 40)))
        lo, hi = r[phase] if isinstance(r, list) else r
        lut[tid] = rng.uniform(lo, hi)
    if rng.uniform() < 0.25:  # positive oral contrast in the bowel
        lut[T["bowel_fluid"]] = rng.uniform(150, 450)
    if a.phase == "delayed" and rng.uniform() < 0.4:  # excreted contrast reaching the bladder
        lut[T["urine"]] = rng.uniform(30, 400)
    if rng.uniform() < 0.15:  # fatty liver
        lut[T["liver"]] = rng.uniform(-10, 40)
    p, names, (lo, hi) = ARBITRARY_CONTRAST
    if a.version >= 4 and rng.uniform() < p:  # every soft tissue its own arbitrary HU: only shape tells organs apart
        for name in names:
            lut[T[name]] = rng.uniform(lo, hi)
    return lut


def render(tissue: np.ndarray, a: Anatomy, spacing, rng: np.random.Generator) -> np.ndarray:
    """float32 HU image of ``tissue``: tissue means, texture, bias, blur, noise, streaks; clipped like scanners."""
    u = rng.uniform
    lut = tissue_means(a, rng)
    hu = lut[tissue]
    sp = np.asarray(spacing, dtype=np.float32)
    texture = ndimage.gaussian_filter(rng.standard_normal(tissue.shape).astype(np.float32), 2.0 / sp)
    texture *= u(3, 15) / (texture.std() + 1e-6)
    soft = (hu > -200) & (hu < 300)
    hu[soft] += texture[soft]
    if u() < 0.5:  # smooth beam hardening / bias, strongest in soft tissue
        bias = ndimage.zoom(rng.uniform(-1, 1, (3, 3, 3)).astype(np.float32), [n / 3 for n in tissue.shape],
                            order=1)[: tissue.shape[0], : tissue.shape[1], : tissue.shape[2]]
        hu[soft] += u(5, 25) * bias[soft]
    if u() < 0.12:
        _metal(hu, tissue, rng)
    # scanner point spread and slice thickness (in voxels), then noise (white or smoothed as by soft kernels)
    sigma = (u(0.2, 1.2) * 3.0 / sp[0], *(u(0.2, 0.8) * 3.0 / sp[1:]))
    hu = ndimage.gaussian_filter(hu, sigma, mode="nearest")
    noise = rng.standard_normal(tissue.shape).astype(np.float32)
    if u() < 0.5:
        noise = ndimage.gaussian_filter(noise, u(0.4, 0.8))
        noise /= noise.std() + 1e-6
    hu += noise * u(4, 40)
    high = 1023.0 if u() < 0.12 else 3071.0  # some archives store 12-bit data
    return np.clip(hu, -1024.0, high, out=hu)


def _metal(hu: np.ndarray, tissue: np.ndarray, rng: np.random.Generator) -> None:
    """A metal implant in bone with radial streaks in its axial slices (dark and bright bands)."""
    bone = np.argwhere(tissue == T["cortical_bone"])
    if len(bone) == 0:
        return
    c = bone[rng.integers(len(bone))]
    zz, yy, xx = np.ogrid[: tissue.shape[0], : tissue.shape[1], : tissue.shape[2]]
    r = int(rng.integers(2, 5))
    zs = slice(max(0, c[0] - r), c[0] + r + 1)
    blob = ((zz[zs] - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) <= r * r
    sub = hu[zs]
    sub[blob] = rng.uniform(2500, 3071)
    ang = np.arctan2(yy - c[1], xx - c[2])
    dist = np.hypot(yy - c[1], xx - c[2]) + 1.0
    streak = np.cos(ang * rng.integers(4, 12)) * rng.uniform(100, 400) * np.exp(-dist / rng.uniform(15, 40))
    sub += streak.astype(np.float32)
