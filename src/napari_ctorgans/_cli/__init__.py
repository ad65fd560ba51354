"""Sub-commands of the ``ctorgans`` command line (one module each, see :mod:`napari_ctorgans.cli`)."""
