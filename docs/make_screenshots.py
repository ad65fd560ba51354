"""Take the user guide's screenshots from the real napari viewer.

Run headless with:  xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python docs/make_screenshots.py
Writes PNGs to docs/images/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import napari
import numpy as np

import napari_ctorgans as ct
from napari_ctorgans._napari.layers import image_layer_kwargs, labels_layer_kwargs

OUT = Path(__file__).with_name("images")
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ct"


def _settle(seconds: float = 1.0) -> None:
    import time

    from qtpy.QtWidgets import QApplication

    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def _save(viewer, name: str, canvas_only: bool = False) -> None:
    OUT.mkdir(exist_ok=True)
    import imageio.v3 as iio

    _settle()
    shot = viewer.screenshot(canvas_only=True, flash=False) if canvas_only else viewer.window.screenshot(flash=False)
    iio.imwrite(OUT / name, shot)
    print("wrote", OUT / name)


def _dock(viewer, display_name: str):
    try:
        return viewer.window.add_plugin_dock_widget("napari-ctorgans", display_name)
    except Exception as exc:
        print(f"skipped widget {display_name!r}: {exc}", file=sys.stderr)
        return None


def main() -> None:
    if "--loop" in sys.argv:  # only the train/predict/correct/evaluate pictures
        _loop()
        return
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1280, 900)

    # 1. the sample phantom with its labels
    viewer.open_sample("napari-ctorgans", "phantom")
    viewer.dims.set_point(0, 90.0)
    viewer.reset_view()
    _save(viewer, "phantom_sample.png")
    viewer.layers.clear()

    # 1b. the real DICOM series (2 mm slices, 0.98 mm pixels) seen from the front: true proportions
    dicom = DATA / "abdomen_dicom"
    if dicom.exists():
        viewer.open(str(dicom), plugin="napari-ctorgans")
        viewer.layers[-1].contrast_limits = (-500.0, 1300.0)
        viewer.dims.order = (1, 0, 2)  # coronal: superior at the top after flipping the vertical axis
        viewer.camera.orientation2d = ("up", "right")
        viewer.dims.set_point(1, viewer.layers[-1].data_to_world((0, 300, 0))[1])
        viewer.reset_view()
        _save(viewer, "dicom_coronal.png")
        viewer.dims.order = (0, 1, 2)
        viewer.camera.orientation2d = ("down", "right")
        viewer.layers.clear()

    # 2. a real CT opened from File > Open, lung window, automatic labels over it
    path = DATA / "chest_3mm.nii.gz"
    if path.exists():
        vol = ct.read_volume(path)
        viewer.add_image(vol.array, **image_layer_kwargs(vol, name="chest CT", window="lung"))
        try:
            labels = ct.auto_label(vol)
            lab = viewer.add_labels(labels, **labels_layer_kwargs(vol, name="automatic labels"))
            lab.opacity = 0.45
        except Exception as exc:
            print(f"automatic labels unavailable: {exc}", file=sys.stderr)
        viewer.dims.set_point(0, vol.origin[0] + vol.spacing[0] * int(vol.shape[0] * 0.6))
        _dock(viewer, "Auto label")
        viewer.reset_view()
        _save(viewer, "auto_label_chest.png")
        viewer.dims.ndisplay = 3
        viewer.layers["chest CT"].visible = False
        viewer.reset_view()
        viewer.camera.angles = (0, 0, 90)
        _save(viewer, "auto_label_chest_3d.png", canvas_only=True)
        viewer.dims.ndisplay = 2
        viewer.layers.clear()

    # 3. the widgets docked next to the phantom
    viewer.open_sample("napari-ctorgans", "phantom")
    for name in ("Augmentation preview", "Train", "Predict", "Evaluate"):
        w = _dock(viewer, name)
        if w is not None:
            viewer.reset_view()
            _save(viewer, f"widget_{name.lower().replace(' ', '_')}.png")
            viewer.window.remove_dock_widget(w[0] if isinstance(w, tuple) else w)
    viewer.close()

    # 4. the loop: predict with a quickly trained model, correct, predict again (the question), evaluate
    _loop()


def _wait(worker) -> None:
    done = []
    worker.finished.connect(lambda: done.append(True))
    while not done:
        _settle(0.2)


def _loop() -> None:
    import tempfile

    run = Path(tempfile.mkdtemp()) / "run"
    cfg = ct.TrainConfig.preset("cpu-quick", validate_every=10**6, output_dir=str(run))  # as `ctorgans demo`
    for _ in ct.train(cfg, [ct.make_phantom(seed=s) for s in (1, 2, 3, 4)]):
        pass
    vol, truth = ct.make_phantom(seed=0)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1280, 900)
    viewer.add_image(vol.array, **image_layer_kwargs(vol, name="phantom"))
    viewer.add_labels(truth, **labels_layer_kwargs(vol, name="reference"))
    viewer.layers["reference"].visible = False
    dock, predictor = viewer.window.add_plugin_dock_widget("napari-ctorgans", "Predict")
    predictor.checkpoint.setCurrentText(str(run / "last.pt"))
    predictor.image_combo.setCurrentText("phantom")
    _wait(predictor.run())
    layer = predictor.result_layer
    layer.data_setitem((np.array([70]), np.array([50]), np.array([60])), 1)  # the user paints a correction
    _wait(predictor.run())  # predicting again asks before touching the corrected layer
    viewer.dims.set_point(0, float(vol.origin[0] + 70 * vol.spacing[0]))
    viewer.reset_view()
    _save(viewer, "loop_predict_question.png")
    predictor.prompt.answer("new layer")
    viewer.window.remove_dock_widget(dock)
    dock, evaluator = viewer.window.add_plugin_dock_widget("napari-ctorgans", "Evaluate")
    evaluator.pred_combo.setCurrentText(predictor.result_layer.name)
    evaluator.ref_combo.setCurrentText("reference")
    _wait(evaluator.run())
    _save(viewer, "widget_evaluate.png")
    viewer.close()


if __name__ == "__main__":
    main()
