"""Whole-volume prediction: resample, window, tile, argmax, post-process, back to the volume's own grid."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ..contract import DEFAULT_OVERLAP, ModelContract, read_contract
from ..labelers import label_checked
from ..labelers._common import border_labels
from ..organs import ORGANS
from ..padding import padding_range
from ..resampling import Grid, _worker_count, gather_labels, nearest_indices, resample_streamed
from ..volume import Volume
from .engine import check_engine, cpu_threads, network_labels, prepare_model, resolve_device
from .hybrid import merge_labelled, resolve_labelers
from .plan import body_box, bytes_per_voxel, plan_tiles

__all__ = ["predict", "Predictor", "postprocess", "KEEP_COMPONENTS"]

#: connected components kept per organ after prediction (None: all components of at least ``min_voxels``):
#: one liver, one bladder, two lungs, two kidneys; bone is many pieces at 3 mm (ribs), so all of them.
KEEP_COMPONENTS: dict[int, int | None] = {1: 1, 2: 1, 3: 2, 4: 2, 5: None, 6: 1}


def postprocess(labels: np.ndarray, *, keep: Mapping[int, int | None] | None = None, fill_holes: bool = True,
                min_voxels: int = 8, threads: int | None = None) -> np.ndarray:
    """Clean a predicted label map: keep the largest connected components per organ and fill holes.

    Parameters
    ----------
    labels : ndarray (Z, Y, X) of int
    keep : dict value -> number of components (None: all of at least ``min_voxels``), default :data:`KEEP_COMPONENTS`
    fill_holes : bool
        Fill cavities enclosed by an organ (3D) with that organ where they are background.
    min_voxels : int
        Smallest component kept for organs with ``keep=None``.
    threads : int, optional
        Organs labelled at once (default: every core this process may use); the result does not depend on it.

    Returns
    -------
    ndarray, same shape and dtype

    Notes
    -----
    Two steps, each organ labelled on its own bounding box in parallel: first every organ's small components are
    removed, then each organ's holes (from its kept mask) are filled where the map is background, in increasing
    label order, so a background voxel enclosed by two organs takes the lower label.
    """
    keep = KEEP_COMPONENTS if keep is None else keep
    out = np.array(labels, copy=True)
    struct = ndimage.generate_binary_structure(3, 1)
    boxes = list(_organ_boxes(out).items())
    with ThreadPoolExecutor(max_workers=_worker_count(threads)) as pool:
        kept = list(pool.map(lambda item: _kept(out[item[1]] == item[0], keep.get(item[0]), item[0] in keep,
                                                 min_voxels, struct), boxes))
        for (value, box), mask in zip(boxes, kept):
            if mask is not None:
                sub = out[box]
                sub[(sub == value) & ~mask] = 0
        if not fill_holes:
            return out
        masks = [out[box] == value if mask is None else mask for (value, box), mask in zip(boxes, kept)]
        holes = list(pool.map(lambda m: _holes(m, struct), masks))
    for (value, box), hole in zip(boxes, holes):
        sub = out[box]
        sub[hole & (sub == 0)] = value
    return out


def _kept(mask: np.ndarray, k: int | None, listed: bool, min_voxels: int, struct) -> np.ndarray | None:
    """The components of ``mask`` to keep (the ``k`` largest, or all of at least ``min_voxels`` when ``k`` is None),
    or None when all of it stays (one component of an organ with a count)."""
    comp, n = ndimage.label(mask, structure=struct)
    if n <= 1 and listed and k is not None:
        return None
    sizes = np.bincount(comp.ravel())[1:]
    good = np.flatnonzero(sizes >= min_voxels) + 1 if k is None else np.argsort(sizes)[::-1][:k] + 1
    lut = np.zeros(n + 1, dtype=bool)
    lut[good] = True
    return lut[comp]


def _organ_boxes(labels: np.ndarray) -> dict[int, tuple[slice, ...]]:
    """Bounding box of each label value > 0, in increasing order; one pass for unsigned labels up to 255 (the
    predicted maps), one per value otherwise. Processing one organ never adds or removes another's voxels, so the
    boxes taken up front are the boxes the loop would find."""
    if labels.dtype == np.uint8:
        return {v + 1: box for v, box in enumerate(ndimage.find_objects(labels)) if box is not None}
    values = [int(v) for v in np.unique(labels) if v != 0]
    return {v: ndimage.find_objects((labels == v).astype(np.int8))[0] for v in values}


def _holes(mask: np.ndarray, struct: np.ndarray) -> np.ndarray:
    """Background voxels of ``mask`` not connected to its faces: ``binary_fill_holes(mask) & ~mask``, in one
    labelling pass (``binary_fill_holes`` dilates the outside until it stops, many passes)."""
    bg, n = ndimage.label(~mask, structure=struct)
    if n == 0:
        return np.zeros_like(mask)
    hole = np.ones(n + 1, dtype=bool)
    hole[0] = False
    hole[border_labels(bg)] = False
    return hole[bg]


class Predictor:
    """A model with its contract: ``Predictor.from_checkpoint(path)(volume) -> labels``.

    Parameters
    ----------
    model : torch.nn.Module
    spacing : float
        Working spacing in mm.
    window : (low, high)
        HU window used in training without augmentation.
    roi_size : 3 ints
        The training crop size (tiles of the previous default; ``ct.predict`` now chooses its own tiles).
    info : dict, optional
        Checkpoint information.
    contract : ModelContract, optional
        What the model expects and predicts (built from ``spacing``, ``window`` and the model when not given).
    """

    def __init__(self, model: torch.nn.Module, *, spacing: float = 3.0, window: tuple[float, float] | None = None,
                 roi_size: Any = (64, 64, 64), info: dict | None = None, contract: ModelContract | None = None):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        if contract is None:
            cfg = getattr(model, "config", None)
            contract = ModelContract(spacing=spacing, **({"window": tuple(window)} if window is not None else {}),
                                     size_multiple=int(getattr(cfg, "size_multiple", 8)))
        self.contract = contract
        self.spacing = contract.spacing
        self.window = contract.window
        self.roi_size = tuple(int(r) for r in (roi_size if np.ndim(roi_size) else (roi_size,) * 3))
        self.info = dict(info or {})

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, *, device: Any = "cpu") -> "Predictor":
        """The model of a checkpoint file (``.pt`` or ``.safetensors``); None or ``"starter"``: the built-in model."""
        import napari_ctorgans as ct  # the checkpoint reader of the public API

        from ..models import resolve_model

        model, info = ct.load_checkpoint(resolve_model(path), device=device)
        return cls.from_checkpoint_info(model, info)

    @classmethod
    def coerce(cls, obj: Any = None, *, device: Any = "cpu") -> "Predictor":
        """A Predictor from what ``ct.predict`` accepts as its model (None or ``"starter"``: the built-in model)."""
        from ..models import resolve_model

        obj = resolve_model(obj)
        if isinstance(obj, Predictor):
            return obj
        if isinstance(obj, (str, Path)):
            return cls.from_checkpoint(obj, device=device)
        if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], torch.nn.Module):
            return cls.from_checkpoint_info(obj[0], obj[1])
        if isinstance(obj, torch.nn.Module):
            return cls(obj)
        raise TypeError(
            "checkpoint_or_model must be None or \"starter\" (the built-in model), a checkpoint path, a "
            f"torch.nn.Module, a (model, info) pair from ct.load_checkpoint, or a Predictor; got {type(obj).__name__}"
        )

    @classmethod
    def from_checkpoint_info(cls, model: torch.nn.Module, info: dict) -> "Predictor":
        contract = read_contract(info)
        crop = (info.get("train_config") or {}).get("crop_size", (64, 64, 64))
        return cls(model, roi_size=tuple(crop), info=info, contract=contract)

    def __call__(self, volume: Volume, **options: Any) -> np.ndarray:
        return predict(volume, self, **options)


def _class_count(model: torch.nn.Module, device: torch.device, multiple: int) -> int:
    cfg = getattr(model, "config", None)
    if cfg is not None and getattr(cfg, "num_classes", None):
        return int(cfg.num_classes)
    with torch.inference_mode():  # a bare module: ask it (one tiny pass)
        probe = torch.zeros((1, 1, *(max(multiple, 8),) * 3), device=device)
        return int(model(probe).shape[1])


def _as_volume(volume: Any) -> Volume:
    import napari_ctorgans as ct

    if isinstance(volume, (str, Path)):
        volume = ct.read_volume(volume)
    if not isinstance(volume, Volume):
        raise TypeError(f"volume must be a ct.Volume or a file path, got {type(volume).__name__}; "
                        "wrap an array with ct.Volume(array, spacing=...)")
    return volume


def _network_input(volume: Volume, source: Grid, sub: Grid, lo, hi, same_grid: bool, contract: ModelContract,
                   threads: int) -> torch.Tensor:
    """The windowed working-grid box as a (1, 1, D, H, W) float32 tensor (resampled in slabs, windowed in place)."""
    from ..padding import fill_padding  # padding outside the reconstruction field reads as air

    if same_grid:
        box = volume.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        hu = np.asarray(fill_padding(box, padding=padding_range(volume)), dtype=np.float32)
    else:
        hu = resample_streamed(fill_padding(volume), source, sub, kind="image", threads=threads)
    return torch.from_numpy(contract.window_array(hu, out=hu))[None, None]


def _to_scan(labels: np.ndarray, volume: Volume, work: Grid, lo, hi, same_grid: bool, threads: int) -> np.ndarray:
    """Working-box labels on the scan's own grid (nearest neighbour); background outside the box."""
    out = np.zeros(volume.shape, dtype=np.uint8)
    if same_grid:
        out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = labels
        return out
    idx = nearest_indices(work, Grid.of(volume))  # the full grid's rounding, as resampling the whole map
    inside = [np.flatnonzero((i >= a) & (i < b)) for i, a, b in zip(idx, lo, hi)]
    if any(len(k) == 0 for k in inside):
        return out
    box = tuple(slice(int(k[0]), int(k[-1]) + 1) for k in inside)
    local = [i[s] - a for i, s, a in zip(idx, box, lo)]
    gather_labels(labels, local, out[box], threads)
    return out


def predict(volume: Volume | str | Path, checkpoint_or_model: Any = None, *, spacing: float | None = None,
            roi_size: Any = None, overlap: float = DEFAULT_OVERLAP, mode: str = "gaussian", batch_size: int | None = None,
            tta: bool = False, postprocess_labels: bool = True, device: Any = None,
            progress: Callable[[int, int], Any] | None = None, return_probabilities: bool = False,
            crop_to_body: bool = True, memory_budget: float | None = None, threads: int | None = None,
            engine: str = "torch", labelers: Any = "auto", plausible: bool = True, return_report: bool = False):
    """Segment a CT volume; the label map comes back on the volume's own grid.

    Steps: find the body's bounding box at low resolution (:func:`body_box`), resample that box to the working
    spacing (anti-aliased, in slabs on every core), window the HU values as in training, run the network over the
    whole box in one pass when it fits ``memory_budget`` (else over tiles chosen for it, blended with ``mode``),
    argmax, keep the largest connected components per organ and fill holes (:func:`postprocess`), and put the
    labels back on the scan's grid by nearest neighbour. Outside the body box is background. With the built-in
    starter model, lungs and bone then come from the automatic labellers (``labelers``).

    Parameters
    ----------
    volume : Volume or path
        CT in HU.
    checkpoint_or_model : None, "starter", path, torch.nn.Module, (model, info) or Predictor
        The model. None (the default) or ``"starter"``: the built-in starter model that ships with the package
        (:mod:`napari_ctorgans.models`, docs/starter-model.md), a first draft of the five organs with no training
        (weak on real CT: see its model card). A checkpoint from :func:`ct.train` (``.pt``) or :func:`ct.save_checkpoint` (``.safetensors``) carries its model contract
        (working spacing, window, size multiple, organ table).
    spacing : float, optional
        Working spacing in mm (default: the contract's).
    roi_size : int or 3 ints, optional
        Tile size; default: chosen from the model's size multiple and ``memory_budget``, up to the whole box.
        The previous default was the training crop (``Predictor.roi_size``) with overlap 0.5.
    overlap : float
        Tile overlap in [0, 1) when the box is tiled.
    mode : {"gaussian", "constant"}
        Tile blending.
    batch_size : int, optional
        Tiles per forward pass (default 1 on the CPU, 4 on CUDA).
    tta : bool
        Mirroring test-time augmentation (8 passes).
    postprocess_labels : bool
        Apply :func:`postprocess`.
    device : str or torch.device, optional
        Where the model runs (default: CUDA when available, else CPU). On CUDA the network runs under float16
        autocast and the tiles are stitched on the GPU, on the CPU when its memory is short.
    progress : callable(done, total), optional
        Called after each batch of tiles.
    return_probabilities : bool
        Also return the probabilities on the whole working grid, ``(classes, Z, Y, X)`` float32.
    crop_to_body : bool
        Compute only inside the body's bounding box (False: the whole scan, as before).
    memory_budget : float, optional
        Bytes one forward pass may use when predict chooses the tiles (default 1e9).
    threads : int, optional
        CPU threads (default: every core this process may use).
    engine : {"torch", "openvino"}
        The network runtime. ``"openvino"`` (optional package) runs one pass over the whole box on the CPU, without
        TTA or probabilities. Its network step takes as long as the default fused torch path on 2 CPU cores (0.75 s
        against 0.78 s on the native chest's body box, the same labels; docs/benchmarks.md), and its first call
        also exports and compiles the model, so ``"torch"`` is the faster choice end to end.
    labelers : "auto", None, bool, str or sequence of str
        Organs taken from the automatic labellers (:func:`ct.auto_label` on the scan's own grid: the labels of
        the Label tab; about 5 s and 0.9 GB on a 512 x 512 x 141 CT on 2 cores) instead of the network: the
        network's voxels of those organs become background and the labellers' take their place (the
        probabilities stay the network's). ``"auto"`` (default): lungs and bone for the built-in starter
        model (read from its file) and the models fine-tuned from it, whose network is weaker than the labellers
        on real CT for these organs (docs/starter-model.md); none for any other model. None, False or ``"none"``:
        none; True, ``"lungs,bone"`` or a sequence of names: those organs.
    plausible : bool
        Remove organ voxels where the organ cannot be (:func:`ct.plausible`: outside the body, a liver above the
        diaphragm, a bladder outside the bony pelvis, ...; about a second on a 512 x 512 x 141 CT). Each removal
        is issued as an :class:`~napari_ctorgans.plausibility.ImplausibleOrganWarning` ("removed 415 mL of bladder
        outside the bony pelvis"), or returned in the report with ``return_report=True``. False: the labels as
        the network (and the labellers) drew them.
    return_report : bool
        Also return a :class:`~napari_ctorgans.quality.PredictReport`: the removals and each organ's
        confidence (the network's mean probability over the organ; below
        :data:`~napari_ctorgans.quality.LOW_CONFIDENCE` the organ is marked "check").

    Returns
    -------
    ndarray (uint8) of the volume's shape, or (labels, probabilities), with the report last when
    ``return_report`` is True: (labels, report) or (labels, probabilities, report)

    Raises
    ------
    NotCTError
        The image is not a CT in Hounsfield units (:func:`ct.check_ct`): refused before any work.
    TypeError, ValueError
        Bad volume or model; a model whose classes do not fit its organ table; tiles that would run away
        (``overlap=0.999``, ``roi_size=1``: the message gives the numbers); ``device="cuda"`` without CUDA;
        ``MemoryError`` with advice when the device runs out of memory.
    FileNotFoundError
        A checkpoint file that does not exist, or the starter model asked for where its file is missing (a source
        checkout without the weights: the message says how to make it).

    Examples
    --------
    >>> labels = ct.predict(ct.read_volume("scan.nii.gz"))  # doctest: +SKIP  (the built-in starter model)
    >>> labels = ct.predict(ct.read_volume("scan.nii.gz"), "runs/demo/best.pt")  # doctest: +SKIP
    """
    volume = _as_volume(volume)
    from ..ctcheck import check_ct

    check_ct(volume)  # a 2D, colour, microscopy, MR, 0..1 or noise image is refused before any work
    dev = resolve_device(device)
    pred = Predictor.coerce(checkpoint_or_model, device=dev)
    from_labelers = resolve_labelers(labelers, pred.info or None)
    contract = pred.contract
    if spacing is not None:
        contract = dataclasses.replace(contract, spacing=float(spacing))
    source = Grid.of(volume)
    same_grid = bool(np.allclose(volume.spacing, (contract.spacing,) * 3, atol=1e-3))
    work = source if same_grid else Grid.working(volume, contract.spacing)
    box = body_box(volume.array, source, work, padding=padding_range(volume)) if crop_to_body else None
    lo, hi = box if box is not None else ((0, 0, 0), tuple(work.shape))
    sub = work.crop(lo, hi)
    with cpu_threads(threads) as n_threads:
        model = prepare_model(pred.model, dev, fuse=engine == "torch")
        classes = _class_count(model, dev, contract.size_multiple)
        contract.check_classes(classes, source=str(pred.info.get("path") or "the model"))
        plan = plan_tiles(sub.shape, size_multiple=contract.size_multiple, per_voxel=bytes_per_voxel(model),
                          classes=classes, roi_size=roi_size, overlap=overlap, tta=tta, memory_budget=memory_budget,
                          what=repr(volume))
        check_engine(engine, plan, dev, tta, return_probabilities)
        x = _network_input(volume, source, sub, lo, hi, same_grid, contract, n_threads)
        need_probs = return_probabilities or (return_report and engine == "torch")
        try:
            labels_t, probs = network_labels(model, x, plan, device=dev, overlap=overlap, mode=mode,
                                             batch_size=batch_size, tta=tta, need_probs=need_probs,
                                             progress=progress, engine=engine,
                                             size_multiple=contract.size_multiple)
        except RuntimeError as exc:
            if "out of memory" not in str(exc).lower():
                raise
            raise MemoryError(f"out of memory predicting {volume!r} on {dev}: pass a smaller memory_budget "
                              f"(now {plan.network_bytes / 1e9:.2f} GB per pass) or roi_size, or device='cpu'") from exc
        del x
        labels = labels_t.numpy()
        if postprocess_labels:
            labels = postprocess(labels, threads=n_threads)
        out = _to_scan(labels, volume, work, lo, hi, same_grid, n_threads)
        labelled = None
        if from_labelers:  # on the scan's own grid, as the Label tab makes them
            labelled = label_checked(volume, list(from_labelers), plausible=False)  # checked above
            merge_labelled(out, labelled, from_labelers)
        report = _checked(out, volume, labelled, plausible, return_report)
        if report is not None and probs is not None:
            report.confidence = _confidence(probs, out, volume, sub, same_grid, lo, hi)
            present = np.bincount(out.ravel(), minlength=256)
            report.labelled = [v for v, o in ORGANS.items() if o.name in from_labelers and present[v]]
            for v in report.labelled:  # the network's channels do not describe them
                report.confidence.pop(v, None)
    result = (out,)
    if return_probabilities:
        full = torch.zeros((probs.shape[0], *work.shape), dtype=torch.float32)
        full[0] = 1.0  # background outside the body box
        full[:, lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = probs
        result += (full.numpy(),)
    if return_report:
        result += (report,)
    return result if len(result) > 1 else out


def _checked(out: np.ndarray, volume: Volume, labelled: np.ndarray | None, plausible: bool, return_report: bool):
    """Run :func:`ct.plausible` on ``out`` in place (landmarks from the labellers' lungs and bone when they ran);
    the removals go into the report, or out as warnings without one."""
    from ..plausibility import plausible as make_plausible
    from ..plausibility import warn_removals
    from ..quality import PredictReport

    report = PredictReport() if return_report else None
    if not plausible:
        return report
    lm = None
    if labelled is not None and labelled.any():
        from ..landmarks import find_landmarks

        lm = find_landmarks(volume, lungs=labelled == 3, bone=labelled == 5)
    _, removed = make_plausible(out, volume, landmarks=lm, inplace=True)
    if report is not None:
        report.removed = removed
    else:
        warn_removals(removed, stacklevel=4)
    return report


def _confidence(probs, out: np.ndarray, volume: Volume, sub: Grid, same_grid: bool, lo, hi) -> dict[int, float]:
    """Each organ's mean network probability over its final voxels, sampled on the working box."""
    from ..quality import organ_confidence

    if same_grid:
        on_work = out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    else:
        idx = nearest_indices(Grid.of(volume), sub)
        on_work = out[np.ix_(*idx)]
    return organ_confidence(probs, on_work)


def organ_names(values) -> dict[int, str]:
    return {int(v): ORGANS[int(v)].name for v in values if int(v) in ORGANS}
