"""napari integration: the only sub-package that imports napari, Qt or magicgui."""
