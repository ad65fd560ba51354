"""Take the labelling guide's picture of the prompts from the real napari viewer, on the real abdomen.

Run headless with:  xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python docs/make_prompt_screenshot.py
Writes docs/images/prompts_abdomen.png: the Label tab after one positive click in the liver, one in each kidney
and a box around the bladder in one slice (``ct/abdomen_3mm.nii.gz``, Apache-2.0, see ../shared/data/README.md).
The clicks are put where a user would click: deep inside each organ of the reference labels.
"""

from __future__ import annotations

import sys

import numpy as np
from scipy import ndimage as ndi

from make_screenshots import DATA, _save, _settle, _wait


def _deep(mask):
    dt = ndi.distance_transform_edt(mask)
    return np.array(np.unravel_index(dt.argmax(), dt.shape), float)


def main() -> int:
    import napari

    import napari_ctorgans as ct

    if not (DATA / "abdomen_3mm.nii.gz").exists():
        print("the real abdomen is missing:", DATA / "abdomen_3mm.nii.gz")
        return 1
    ref = np.asarray(ct.read_labels(DATA / "abdomen_3mm_ctorg.nii.gz").array)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    dock, panel = viewer.window.add_plugin_dock_widget("napari-ctorgans", "CT Organs panel")
    ct_layer = viewer.open(str(DATA / "abdomen_3mm.nii.gz"), plugin="napari-ctorgans")[0]
    label = panel.show_step("label")
    _settle(2.0)
    prompts = label.prompts
    _wait(prompts)
    points = prompts.points_layer(activate=True)

    def click(organ, voxel):
        prompts.organ_combo.setCurrentText(organ)
        points.add(points.world_to_data(ct_layer.data_to_world(voxel)))
        _wait(prompts)
        print(organ, prompts.status.text())

    click("liver", _deep(ref == 1))
    lab, n = ndi.label(ref == 4)
    for i in range(1, n + 1):
        click("kidneys", _deep(lab == i))
    bladder = ref == 2
    z = int(np.argmax(bladder.sum(axis=(1, 2))))
    ys, xs = np.nonzero(bladder[z])
    corners = [[z, ys.min(), xs.min()], [z, ys.min(), xs.max()], [z, ys.max(), xs.max()], [z, ys.max(), xs.min()]]
    prompts.organ_combo.setCurrentText("bladder")
    shapes = prompts.shapes_layer(activate=True)
    shapes.add_rectangles(np.array([shapes.world_to_data(ct_layer.data_to_world(c)) for c in corners]))
    prompts.apply_shape()
    _wait(prompts)
    print("bladder", prompts.status.text())
    # the axial slice through the kidneys' clicks
    zk = int(_deep(lab == 1)[0])
    viewer.dims.set_point(0, ct_layer.data_to_world((zk, 0, 0))[0])
    viewer.layers.selection.active = points
    _save(viewer, "prompts_abdomen.png")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
