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
    5: Organ(5, "bone", _rgba("#f5f5f5")),
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
