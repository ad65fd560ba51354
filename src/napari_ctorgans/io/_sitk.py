"""The one place where SimpleITK's (x, y, z) order meets numpy's (z, y, x) order."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..volume import Volume

#: In-memory orientation (DICOM convention): x runs to the patient's Left, y to Posterior, z to Superior,
#: so array axis 0 runs inferior -> superior and an axial slice is ``array[z]``.
CANONICAL = "LPS"

SUPPORTED_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")

#: The largest label value a label map may hold (files store labels as uint8, uint16 or int32).
LABEL_MAX = 2**31 - 1

#: Voxel sizes (mm) outside this range are a damaged header or a wrong unit, never a CT.
SPACING_RANGE = (1e-4, 1e4)


def label_dtype(top: int) -> type:
    """The smallest dtype for labels up to ``top`` (at most :data:`LABEL_MAX`; callers refuse larger ones)."""
    return np.uint8 if top < 256 else np.uint16 if top < 65536 else np.int32


def check_geometry(image: sitk.Image, path: str | None) -> None:
    """Refuse a spacing or origin that cannot place the voxels in space (NaN, infinite, zero or absurd)."""
    spacing, origin = image.GetSpacing(), image.GetOrigin()
    lo, hi = SPACING_RANGE
    if not all(np.isfinite(s) and lo <= s <= hi for s in spacing):
        raise ValueError(
            f"{path or 'image'} has voxel spacing {tuple(spacing)} mm (x, y, z); a spacing must lie between "
            f"{lo:g} and {hi:g} mm. The header is damaged or uses another unit: fix the spacing in the header "
            "or export the scan again"
        )
    if not all(np.isfinite(o) for o in origin) or not all(np.isfinite(d) for d in image.GetDirection()):
        raise ValueError(
            f"{path or 'image'} has origin {tuple(origin)} / direction {tuple(image.GetDirection())} with NaN or "
            "infinite values; its position in space is unknown. Fix the header or export the scan again"
        )


def orientation_code(geometry) -> str:
    """ITK's orientation letters (e.g. "LPS", "RAS") of an image or an image file reader, from its direction."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(geometry.GetDirection())


def from_sitk(image: sitk.Image, *, path: str | None = None, reorient: bool = True, **metadata) -> Volume:
    """Convert a 3D SimpleITK image to a :class:`Volume` in the canonical orientation."""
    if image.GetDimension() != 3:
        raise ValueError(
            f"{path or 'image'} has {image.GetDimension()} dimensions; a CT volume must be 3D "
            "(for a 2D slice load the whole series folder, for 4D data pick one time point first)"
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"{path or 'image'} has {image.GetNumberOfComponentsPerPixel()} components per voxel "
            "(colour or vector image); CT must be single-channel"
        )
    check_geometry(image, path)
    array = sitk.GetArrayFromImage(image)  # (z, y, x), a copy we own
    return volume_from_array(array, image, path=path, reorient=reorient, **metadata)


#: orientation letter -> (the canonical axis it lies along, whether it runs against CANONICAL's direction)
_AXIS_OF_LETTER = {"L": (0, False), "R": (0, True), "P": (1, False), "A": (1, True), "S": (2, False), "I": (2, True)}


def volume_from_array(array: np.ndarray, geometry, *, path: str | None = None, reorient: bool = True,
                      **metadata) -> Volume:
    """A :class:`Volume` of ``array`` (z, y, x) placed by ``geometry`` (anything with ITK's ``GetSpacing``,
    ``GetOrigin`` and ``GetDirection`` in (x, y, z) order: an image or an image file reader), reoriented to
    :data:`CANONICAL`.

    The reorientation is the one ``sitk.DICOMOrient`` makes (ITK chooses the orientation from the direction
    cosines; the axes are permuted and flipped, the origin moves to the new first voxel), done on the array
    without building an ITK image.
    """
    spacing = np.asarray(geometry.GetSpacing(), dtype=float)
    origin = np.asarray(geometry.GetOrigin(), dtype=float)
    direction = np.asarray(geometry.GetDirection(), dtype=float).reshape(3, 3)  # columns: the axes, (x, y, z)
    source = orientation_code(geometry)
    if reorient and source != CANONICAL:
        array, spacing, origin, direction = _permute_and_flip(array, spacing, origin, direction, source, path)
    return Volume(
        array=array,
        spacing=tuple(spacing[::-1].tolist()),
        origin=tuple(origin[::-1].tolist()),
        direction=direction[::-1, ::-1].copy(),  # rows and columns to (z, y, x)
        source_orientation=source,
        path=path,
        metadata=dict(metadata),
    )


def _permute_and_flip(array, spacing, origin, direction, source: str, path: str | None):
    src, flip = [0, 0, 0], [False, False, False]  # canonical axis p comes from the file's axis src[p]
    for axis, letter in enumerate(source):
        p, flip[p] = _AXIS_OF_LETTER[letter]
        src[p] = axis
    if sorted(src) != [0, 1, 2]:
        raise ValueError(f"{path or 'image'} has direction cosines {tuple(direction.T.ravel())} that give no "
                         f"orientation ({source!r}: two axes along one direction); fix the header or export the scan "
                         "again")
    size = array.shape[::-1]  # (x, y, z)
    for p in range(3):
        if flip[p]:
            origin = origin + (size[src[p]] - 1) * spacing[src[p]] * direction[:, src[p]]
    signs = np.where(flip, -1.0, 1.0)
    direction = direction[:, src] * signs
    spacing = spacing[src]
    # numpy axis q holds ITK axis 2 - q
    array = array.transpose([2 - src[2 - q] for q in range(3)])
    array = array[tuple(slice(None, None, -1) if flip[2 - q] else slice(None) for q in range(3))]
    return np.ascontiguousarray(array), spacing, origin, direction


def to_sitk(array: np.ndarray, like: Volume, *, orientation: str | None = None) -> sitk.Image:
    """Build a SimpleITK image of ``array`` (z, y, x) on the grid of ``like``.

    With ``orientation`` (e.g. ``like.source_orientation``) the image is reoriented to it, which restores the
    voxel order and geometry of the file ``like`` was read from.
    """
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(tuple(float(s) for s in like.spacing[::-1]))
    image.SetOrigin(tuple(float(o) for o in like.origin[::-1]))
    image.SetDirection(tuple(np.asarray(like.direction)[::-1, ::-1].ravel().tolist()))
    if orientation and orientation != orientation_code(image):
        image = sitk.DICOMOrient(image, orientation)
    return image
