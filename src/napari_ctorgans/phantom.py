"""A procedural CT phantom with CT-ORG ground truth: the project's own sample data.

The anatomy is laid out in the canonical orientation (axis 0 inferior -> superior, axis 1 anterior -> posterior,
axis 2 patient right -> left), sized in millimetres for a 360 x 300 x 420 mm field of view and scaled to other
fields of view. It has what makes real scans hard for naive labelers: a trachea, bowel gas and an air-filled
exam couch under the patient. Each seed varies organ sizes and positions and the patient's rotation about the long
axis; edges are blurred as by a scanner's point spread (partial volume) before noise is added.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .volume import Volume, as_spacing

#: default field of view (z, y, x) in mm
FOV_MM = (420.0, 300.0, 360.0)


def _ellipsoid(z, y, x, centre, radii):
    return ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((x - centre[2]) / radii[2]) ** 2 <= 1.0


def make_phantom(
    *, seed: int = 0, spacing=3.0, shape=None, noise_hu: float = 20.0, partial_volume: float = 0.5
) -> tuple[Volume, np.ndarray]:
    """Make a procedural thorax-abdomen-pelvis CT with CT-ORG labels.

    Parameters
    ----------
    seed : int
        Varies organ positions and sizes, vessels, gas pockets and noise.
    spacing : float or 3 floats
        Voxel size in mm (z, y, x).
    shape : 3 ints, optional
        Voxel counts; default covers a 420 x 300 x 360 mm field of view. The anatomy scales with the field of view.
    noise_hu : float
        Standard deviation of the image noise in HU.
    partial_volume : float
        Gaussian blur (in voxels) of the noiseless image, giving partial-volume edges; labels stay sharp.

    Returns
    -------
    (Volume, ndarray)
        int16 HU volume and uint8 labels (0 background, 1 liver, 2 bladder, 3 lungs, 4 kidneys, 5 bone).

    Examples
    --------
    >>> import napari_ctorgans as ct
    >>> vol, labels = ct.make_phantom(seed=1)
    >>> vol.shape == labels.shape
    True
    """
    sp = np.asarray(as_spacing(spacing))
    if shape is None:
        shape = tuple(int(round(f / s)) for f, s in zip(FOV_MM, sp))
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"shape must be 3 sizes of at least 8 voxels, got {shape!r}")
    rng = np.random.default_rng(seed)
    extent = np.asarray(shape) * sp
    k = extent / np.asarray(FOV_MM)  # anatomy scale per axis
    # physical coordinates (mm) relative to the centre of the field of view
    z = ((np.arange(shape[0], dtype=np.float32) + 0.5) * sp[0] - extent[0] / 2)[:, None, None] / k[0]
    y = ((np.arange(shape[1], dtype=np.float32) + 0.5) * sp[1] - extent[1] / 2)[None, :, None] / k[1]
    x = ((np.arange(shape[2], dtype=np.float32) + 0.5) * sp[2] - extent[2] / 2)[None, None, :] / k[2]
    jit = lambda s: float(rng.uniform(-s, s))  # noqa: E731
    # the patient lies slightly rotated about the long axis; the couch stays level
    theta = np.deg2rad(jit(6.0))
    x_couch, y_couch = x, y
    x, y = (np.cos(theta) * x + np.sin(theta) * y).astype(np.float32), (np.cos(theta) * y - np.sin(theta) * x).astype(
        np.float32
    )

    hu = np.full(shape, -1000.0, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.uint8)

    # body: elliptical cylinder, a fat rim, from the bottom to near the top
    ax, ay = 150.0 + jit(10), 105.0 + jit(8)
    body_r = (x / ax) ** 2 + ((y + 5) / ay) ** 2
    body = (body_r <= 1.0) & (np.abs(z) < 200)
    hu[body] = -90.0  # subcutaneous fat
    inner = body & (((x / (ax - 12)) ** 2 + ((y + 5) / (ay - 12)) ** 2) <= 1.0)
    hu[inner] = 35.0  # muscle / soft tissue

    # lungs (upper part), each with vessels; a trachea between them
    lung_z = 95.0 + jit(8)
    for side in (-1, 1):
        c = (lung_z, -5.0 + jit(5), side * (72.0 + jit(5)))
        r = (85.0 + jit(8), 70.0 + jit(5), 55.0 + jit(5))
        lung = _ellipsoid(z, y, x, c, r) & inner
        hu[lung] = -860.0
        labels[lung] = 3
    vessels = (rng.random(shape, dtype=np.float32) < 0.02) & (labels == 3)
    hu[vessels] = -300.0
    trachea = ((x / 10.0) ** 2 + ((y + 30.0) / 10.0) ** 2 <= 1.0) & (z > lung_z + 20) & inner
    hu[trachea] = -1000.0

    # liver under the right lung (patient right = negative x)
    liver_c = (lung_z - 105.0 + jit(6), 0.0 + jit(5), -55.0 + jit(6))
    liver = _ellipsoid(z, y, x, liver_c, (55.0, 70.0, 80.0)) & inner & (labels == 0)
    hu[liver] = 100.0  # portal-venous phase, as most CT-ORG scans
    labels[liver] = 1

    # kidneys, posterior, contrast-enhanced cortex
    kid_z = -30.0 + jit(8)
    for side in (-1, 1):
        kc, kr = (kid_z + side * 8, 45.0, side * 62.0), (45.0, 22.0, 25.0)
        fat = _ellipsoid(z, y, x, kc, tuple(r + 8.0 for r in kr)) & (labels == 0) & inner
        hu[fat] = -80.0  # perirenal fat
        kid = _ellipsoid(z, y, x, kc, kr) & (labels == 0) & inner
        hu[kid] = 150.0
        labels[kid] = 4

    # bladder, low and anterior
    bc, br = (-150.0 + jit(6), -30.0, 0.0 + jit(5)), (28.0, 30.0, 38.0)
    hu[_ellipsoid(z, y, x, bc, tuple(r + 8.0 for r in br)) & inner & (labels == 0)] = -80.0  # perivesical fat
    blad = _ellipsoid(z, y, x, bc, br) & inner & (labels == 0)
    hu[blad] = 10.0
    labels[blad] = 2

    # bowel gas pockets in the abdomen (must never be called lung)
    for _ in range(6):
        c = (rng.uniform(-120, -20), rng.uniform(-60, 10), rng.uniform(-60, 70))
        gas = _ellipsoid(z, y, x, c, tuple(rng.uniform(8, 18, 3))) & inner & (labels == 0)
        hu[gas] = -990.0

    # skeleton: spine, ribs around the lungs, pelvis and femurs; cortex 700 HU, marrow 250 HU
    bone = np.zeros(shape, dtype=bool)
    marrow = np.zeros(shape, dtype=bool)
    spine_r = ((x / 16.0) ** 2 + ((y - 70.0) / 16.0) ** 2)
    spine = (spine_r <= 1.0) & (z > -175) & (z < 190)
    bone |= spine
    marrow |= (spine_r <= 0.45) & spine
    for zr in np.arange(lung_z - 80, lung_z + 80, 24.0):
        rib_r = (x / (ax - 20)) ** 2 + ((y + 2) / (ay - 20)) ** 2
        rib = (rib_r >= 0.86) & (rib_r <= 1.0) & (np.abs(z - zr) <= 4.0) & (y > -70)
        bone |= rib
        bone |= (np.abs(x) <= 8) & (y > 20) & (y < 70) & (np.abs(z - zr) <= 4.0)  # rib-spine joint
    pel_r = (x / 120.0) ** 2 + ((y - 20.0) / 75.0) ** 2
    pelvis = (pel_r >= 0.7) & (pel_r <= 1.0) & (z > -175) & (z < -110) & (y > -20)
    bone |= pelvis
    for side in (-1, 1):
        fem_r = ((x - side * 95.0) / 18.0) ** 2 + ((y - 5.0) / 18.0) ** 2
        femur = (fem_r <= 1.0) & (z < -140)
        bone |= femur
        marrow |= (fem_r <= 0.4) & femur
    bone &= body
    marrow &= bone
    hu[bone] = 700.0
    hu[marrow] = 250.0
    labels[bone] = 5

    # exam couch: an air-filled plastic shell under the patient
    couch_y0 = ay + 12.0
    couch = (y_couch > couch_y0) & (y_couch < couch_y0 + 30) & (np.abs(x_couch) < 170)
    couch_air = (y_couch > couch_y0 + 3) & (y_couch < couch_y0 + 27) & (np.abs(x_couch) < 165)
    hu[np.broadcast_to(couch, shape)] = 100.0
    hu[np.broadcast_to(couch_air, shape)] = -950.0

    # partial-volume edges: the scanner's point spread blurs every boundary over about a voxel
    hu = ndimage.gaussian_filter(hu, sigma=partial_volume, mode="nearest") if partial_volume > 0 else hu
    if noise_hu > 0:
        hu += rng.normal(0.0, noise_hu, size=shape).astype(np.float32)
    hu = np.clip(np.round(hu), -1024, 3071).astype(np.int16)
    origin = tuple(-extent / 2 + sp / 2)
    vol = Volume(hu, spacing=tuple(sp), origin=origin, source_orientation="LPS", metadata={"phantom_seed": seed})
    return vol, labels
