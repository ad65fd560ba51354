"""Take the user guide's screenshots from the real napari viewer.

Run headless with:  xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python docs/make_screenshots.py
Writes PNGs to docs/images/: the loop pictures (``loop_*.png``) come from the GUI loop test's own viewer
(``tests/test_gui_loop.py`` run with ``CTORGANS_SCREENSHOTS``), the others from the viewer opened here. ``--loop``
takes only the loop pictures, ``--no-loop`` only the others, ``--starter`` only the README's starter-model picture,
``--review`` only the user guide's uncertainty picture, ``--label`` only the labelling guide's Label tab picture.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).with_name("images")
DATA = ROOT.parent / "shared" / "data" / "ct"


def _settle(seconds: float = 1.0) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def _save(viewer, name: str, canvas_only: bool = False) -> None:
    import imageio.v3 as iio

    OUT.mkdir(exist_ok=True)
    _settle()
    shot = viewer.screenshot(canvas_only=True, flash=False) if canvas_only else viewer.window.screenshot(flash=False)
    iio.imwrite(OUT / name, shot)
    print("wrote", OUT / name)


def _wait(step) -> None:
    while step.worker is not None:
        _settle(0.2)


def _label_chest(viewer, panel):
    """Open the real chest, run the Label tab's lungs and bone on it and show a slice through both lungs."""
    chest = viewer.open(str(DATA / "chest_3mm.nii.gz"), plugin="napari-ctorgans")[0]
    chest.contrast_limits = (-1350.0, 150.0)
    label = panel.show_step("label")
    _settle()
    for organ in ("lungs", "bone"):
        label.run(organ)
        _wait(label)
    viewer.dims.set_point(0, chest.data_to_world((int(chest.data.shape[0] * 0.6), 0, 0))[0])
    viewer.reset_view()
    return chest


def label_picture() -> None:
    """The labelling guide's picture: the Label tab of the CT Organs panel after lungs and bone on the chest."""
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    _, panel = viewer.window.add_plugin_dock_widget("napari-ctorgans", "CT Organs panel")
    _label_chest(viewer, panel)
    _save(viewer, "label_tab_chest.png")
    viewer.close()


def pictures() -> None:
    """The phantom sample, the DICOM series seen from the front, the chest's automatic labels, the augment tab."""
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    dock, panel = viewer.window.add_plugin_dock_widget("napari-ctorgans", "CT Organs panel")

    viewer.open_sample("napari-ctorgans", "phantom")
    viewer.dims.set_point(0, 90.0)
    viewer.reset_view()
    _save(viewer, "phantom_sample.png")
    viewer.layers.clear()

    if (DATA / "abdomen_dicom").exists():  # 2 mm slices, 0.98 mm pixels, seen from the front with the head up
        series = viewer.open(str(DATA / "abdomen_dicom"), plugin="napari-ctorgans")[0]
        series.contrast_limits = (-500.0, 1300.0)
        panel.view_combo.setCurrentText("coronal")
        viewer.dims.set_point(1, series.data_to_world((0, 300, 0))[1])
        viewer.reset_view()
        _save(viewer, "dicom_coronal.png")
        panel.view_combo.setCurrentText("axial")
        viewer.layers.clear()

    if (DATA / "chest_3mm.nii.gz").exists():  # the Label tab on a real chest CT: lungs, then bone
        chest = _label_chest(viewer, panel)
        _save(viewer, "auto_label_chest.png")
        chest.visible = False
        panel.view_combo.setCurrentText("3D")
        viewer.reset_view()
        viewer.scene.camera.angles = (0, 0, 90)
        _save(viewer, "auto_label_chest_3d.png", canvas_only=True)
        panel.view_combo.setCurrentText("axial")
        viewer.layers.clear()

    if (DATA / "abdomen_3mm.nii.gz").exists():  # the Augment tab on the real abdomen with its reference labels
        viewer.open(str(DATA / "abdomen_3mm.nii.gz"), plugin="napari-ctorgans")
        viewer.open(str(DATA / "abdomen_3mm_ctorg.nii.gz"), plugin="napari-ctorgans")
        augment = panel.show_step("augment")
        augment.labels_combo.setCurrentText("abdomen_3mm_ctorg")
        _settle(1.0)
        while augment.busy or augment.n_previews == 0:
            _settle(0.3)
        viewer.dims.set_point(0, viewer.layers[0].data_to_world((60, 0, 0))[0])
        viewer.reset_view()
        _save(viewer, "augmentation_preview.png")
    viewer.close()


def starter_picture() -> None:
    """The README's picture: the real abdomen segmented by the built-in starter model (Predict tab, one click)."""
    import napari

    if not (DATA / "abdomen_3mm.nii.gz").exists():
        return
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    dock, panel = viewer.window.add_plugin_dock_widget("napari-ctorgans", "CT Organs panel")
    ct_layer = viewer.open(str(DATA / "abdomen_3mm.nii.gz"), plugin="napari-ctorgans")[0]
    predict = panel.show_step("predict")
    _settle()
    predict.run()
    _wait(predict)
    labels = next(layer for layer in viewer.layers if layer.name.endswith(" prediction"))
    import numpy as np

    data = np.asarray(labels.data)
    # the coronal row that shows the most organs (each with at least 50 voxels), then the most kidney
    counts = np.stack([(data == k).sum(axis=(0, 2)) for k in range(1, 6)])
    score = (counts >= 50).sum(axis=0) * 10**6 + counts[3]
    row = int(np.argmax(score))
    print("coronal row", row, "organ voxels", counts[:, row].tolist())
    panel.view_combo.setCurrentText("coronal")
    viewer.dims.set_point(1, ct_layer.data_to_world((0, row, 0))[1])
    viewer.reset_view()
    _save(viewer, "starter_abdomen.png")
    viewer.close()


def review_picture() -> None:
    """The user guide's picture of the Predict tab's uncertainty layer after one press of Next, on the real abdomen."""
    import napari

    if not (DATA / "abdomen_3mm.nii.gz").exists():
        return
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    dock, panel = viewer.window.add_plugin_dock_widget("napari-ctorgans", "CT Organs panel")
    viewer.open(str(DATA / "abdomen_3mm.nii.gz"), plugin="napari-ctorgans")
    predict = panel.show_step("predict")
    _settle()
    predict.review.option.setChecked(True)
    predict.run()
    _wait(predict)
    region = predict.review.next()
    print("first region", region)
    _save(viewer, "review_uncertainty.png")
    viewer.close()


def loop_pictures() -> int:
    """Run the GUI loop test; it writes ``loop_*.png`` from its viewer."""
    env = {**os.environ, "CTORGANS_SCREENSHOTS": str(OUT)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gui_loop.py"]
    return subprocess.call(cmd, cwd=ROOT, env=env)


def main() -> int:
    if "--starter" in sys.argv:
        starter_picture()
        return 0
    if "--label" in sys.argv:
        label_picture()
        return 0
    if "--review" in sys.argv:
        review_picture()
        return 0
    if "--loop" not in sys.argv:
        pictures()
    return 0 if "--no-loop" in sys.argv else loop_pictures()


if __name__ == "__main__":
    sys.exit(main())
