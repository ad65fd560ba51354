"""Label values, names and colours of the CT-ORG convention."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Organ:
    """One class of a CT-ORG label map."""

    value: int
    name: str
    color: tuple[float, float, float, float]  # RGBA in [0, 1]


def _rgba(hex_code: str) -> tuple[float, float, float, float]:
    h = hex_code.lstrip("#")
    return (int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255, 1.0)


#: label value -> Organ, in the CT-ORG convention (6 brain exists in CT-ORG but is optional).
ORGANS: dict[int, Organ] = {
    0: Organ(0, "background", (0.0, 0.0, 0.0, 0.0)),
    1: Organ(1, "liver", _rgba("#d2691e")),
    2: Organ(2, "bladder", _rgba("#ffd700")),
    3: Organ(3, "lungs", _rgba("#1e90ff")),
    4: Organ(4, "kidneys", _rgba("#32cd32")),
    5: Organ(5, "bone", _rgba("#9b30ff")),  # purple: bone is already white in every CT window
    6: Organ(6, "brain", _rgba("#ff69b4")),
}

#: value used in training label maps for "this organ was not labelled here" (ignored by losses).
IGNORE_LABEL = 255

#: the classes a model predicts by default: background + the five CT-ORG organs.
DEFAULT_CLASSES = 6


def organ_value(name_or_value: str | int) -> int:
    """Return the label value of an organ given by name (case-insensitive) or value."""
    if isinstance(name_or_value, int):
        if name_or_value not in ORGANS:
            raise ValueError(f"unknown organ label {name_or_value}; known: {sorted(ORGANS)}")
        return name_or_value
    for organ in ORGANS.values():
        if organ.name == str(name_or_value).lower():
            return organ.value
    names = ", ".join(o.name for o in ORGANS.values())
    raise ValueError(f"unknown organ {name_or_value!r}; known organs: {names}")


def napari_colormap(include_ignore: bool = True) -> dict[int | None, tuple]:
    """A ``{value: rgba}`` mapping for napari Labels layers (``colormap=DirectLabelColormap(...)``)."""
    colors: dict[int | None, tuple] = {o.value: o.color for o in ORGANS.values()}
    if include_ignore:
        colors[IGNORE_LABEL] = (0.5, 0.5, 0.5, 0.5)
    colors[None] = (1.0, 0.0, 1.0, 1.0)  # any other value
    return colors


@dataclass(frozen=True)
class SnomedCode:
    """A SNOMED CT concept (scheme designator ``SCT``) as DICOM codes it."""

    value: str
    meaning: str


_ANATOMY = SnomedCode("91723000", "Anatomical Structure")
_TISSUE = SnomedCode("85756007", "Tissue")

#: label value -> (segmented property category, segmented property type) for DICOM-SEG and RTSTRUCT;
#: the one place for the organs' SNOMED CT codes.
SNOMED: dict[int, tuple[SnomedCode, SnomedCode]] = {
    1: (_ANATOMY, SnomedCode("10200004", "Liver")),
    2: (_ANATOMY, SnomedCode("89837001", "Urinary bladder")),
    3: (_ANATOMY, SnomedCode("39607008", "Lung")),
    4: (_ANATOMY, SnomedCode("64033007", "Kidney")),
    5: (_TISSUE, SnomedCode("272673000", "Bone")),
    6: (_ANATOMY, SnomedCode("12738006", "Brain")),
}

#: codes for a segment without a CT-ORG organ (a user's own class).
SNOMED_OTHER: tuple[SnomedCode, SnomedCode] = (_TISSUE, _TISSUE)

#: other names the organs go by in segmentations made elsewhere (matched case-insensitively, after the codes).
ORGAN_ALIASES: dict[int, tuple[str, ...]] = {
    1: ("liver",),
    2: ("bladder", "urinary bladder", "urinary_bladder"),
    3: ("lung", "lungs", "left lung", "right lung", "lung_left", "lung_right", "lung_upper_lobe_left",
        "lung_lower_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right"),
    4: ("kidney", "kidneys", "left kidney", "right kidney", "kidney_left", "kidney_right"),
    5: ("bone", "bones", "skeleton", "bone structure"),
    6: ("brain",),
}


def organ_from_segment(code_value: str | None, name: str | None) -> int | None:
    """The CT-ORG value of a segment or ROI made elsewhere, by its SNOMED CT code first, then its name."""
    for value, (_, code) in SNOMED.items():
        if code_value and str(code_value).strip() == code.value:
            return value
    key = (name or "").strip().lower()
    for value, names in ORGAN_ALIASES.items():
        if key in names:
            return value
    return None
