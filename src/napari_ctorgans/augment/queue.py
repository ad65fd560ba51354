"""FIFO prefetch pipeline: background threads prepare the next augmented batches while the model trains.

Batch ``i`` depends only on ``(seed, i)``: the cases it uses and the augmentation seeds are drawn from
``numpy.random.default_rng([seed, i])``, so the batch stream is the same whatever the number of worker threads
and however the threads are scheduled. Batches come out strictly in order. On a CUDA device each worker copies
its volumes through pinned host memory on its own CUDA stream and augments them there (the CUDA backend writes the
batch tensors in place); the consumer's stream waits on an event, so there is no host round trip and no
synchronisation of the whole device.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .core import augment, check_shape
from .params import OUT_LABEL, OUT_VALUE_HU, AugmentParams
from .sampling import draw_transform


class PrefetchQueue(Iterator):
    """Iterator of augmented training batches, prepared ``depth`` batches ahead by ``workers`` threads.

    Parameters
    ----------
    cases : sequence of (image, labels)
        Training volumes: ``image`` (Z, Y, X) HU array (or a :class:`~napari_ctorgans.Volume`), ``labels`` an
        integer array of the same shape (or a Volume).
    params : AugmentParams or None
        Augmentation ranges; None for no augmentation (only the crop and the fixed window of
        :meth:`AugmentParams.none`). Change it later with :meth:`set_params` (curriculum).
    out_shape : 3 ints
        Crop size (z, y, x) of every example.
    batch_size : int
        Examples per batch.
    seed : int
        Seed of the whole stream.
    depth : int
        Maximum number of batches prepared ahead of the consumer.
    workers : int
        Background threads.
    device : str or torch.device
        ``"cpu"`` or a CUDA device; batches are torch tensors on it.
    num_batches : int or None
        Stop after this many batches; None for an endless stream.

    Yields
    ------
    images : torch.Tensor float32 (N, 1, Z, Y, X) in [0, 1]
    labels : torch.Tensor int64 (N, Z, Y, X)

    Notes
    -----
    An exception raised while preparing batch ``i`` is re-raised by the ``next()`` call that would have returned
    batch ``i``. :meth:`close` (or leaving a ``with`` block) stops and joins the threads.

    Examples
    --------
    >>> import numpy as np, napari_ctorgans as ct
    >>> img = np.zeros((20, 20, 20), np.float32); lab = np.zeros((20, 20, 20), np.uint8)
    >>> with ct.PrefetchQueue([(img, lab)], ct.AugmentParams(), out_shape=(16, 16, 16), batch_size=2) as q:
    ...     images, labels = next(q)
    >>> tuple(images.shape), tuple(labels.shape)
    ((2, 1, 16, 16, 16), (2, 16, 16, 16))
    """

    def __init__(
        self,
        cases: Sequence[Any],
        params: AugmentParams | None,
        *,
        out_shape: tuple[int, int, int],
        batch_size: int = 1,
        seed: int = 0,
        depth: int = 2,
        workers: int = 1,
        device: Any = "cpu",
        num_batches: int | None = None,
    ) -> None:
        import torch

        self._cases = [self._as_pair(c, i) for i, c in enumerate(cases)]
        if not self._cases:
            raise ValueError("cases is empty; pass at least one (image, labels) pair")
        for name, v, lo in (("batch_size", batch_size, 1), ("depth", depth, 1), ("workers", workers, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if num_batches is not None and (not isinstance(num_batches, (int, np.integer)) or num_batches < 0):
            raise ValueError(f"num_batches must be None or an integer >= 0, got {num_batches!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if params is not None and not isinstance(params, AugmentParams):
            raise TypeError(f"params must be an AugmentParams or None, got {type(params).__name__}")
        self.out_shape = check_shape(out_shape, "out_shape")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.depth = int(depth)
        self.num_batches = num_batches
        self.device = torch.device(device)
        self._params = params if params is not None else AugmentParams.none()
        self._cond = threading.Condition()
        self._results: dict[int, Any] = {}
        self._next_task = 0  # next batch index a worker will start
        self._next_out = 0  # next batch index the consumer receives
        self._stop = False
        self._threads = [
            threading.Thread(target=self._work, name=f"ctorgans-prefetch-{k}", daemon=True) for k in range(workers)
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _as_pair(case: Any, i: int) -> tuple[np.ndarray, np.ndarray]:
        try:
            image, labels = case
        except (TypeError, ValueError):
            raise TypeError(f"cases[{i}] must be an (image, labels) pair, got {type(case).__name__}") from None
        image = np.asarray(getattr(image, "array", image))
        labels = np.asarray(getattr(labels, "array", labels))
        if image.ndim != 3 or image.shape != labels.shape:
            raise ValueError(
                f"cases[{i}] must hold a 3D image and labels of the same shape, got {image.shape} and {labels.shape}"
            )
        return np.ascontiguousarray(image), np.ascontiguousarray(labels)

    # -- public API ---------------------------------------------------------------------------------------------
    def set_params(self, params: AugmentParams | None) -> None:
        """Use new augmentation ranges for batches not yet started (e.g. switch augmentation on)."""
        if params is not None and not isinstance(params, AugmentParams):
            raise TypeError(f"params must be an AugmentParams or None, got {type(params).__name__}")
        with self._cond:
            self._params = params if params is not None else AugmentParams.none()

    def close(self) -> None:
        """Stop the workers and wait for them; pending batches are dropped. Safe to call twice."""
        with self._cond:
            self._stop = True
            self._results.clear()
            self._cond.notify_all()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join()

    @property
    def closed(self) -> bool:
        return self._stop

    def __enter__(self) -> PrefetchQueue:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    def __iter__(self) -> PrefetchQueue:
        return self

    def __next__(self):
        with self._cond:
            if self._stop:
                raise StopIteration
            i = self._next_out
            if self.num_batches is not None and i >= self.num_batches:
                raise StopIteration
            while i not in self._results:
                if self._stop:
                    raise StopIteration
                self._cond.wait()
            result = self._results.pop(i)
            self._next_out += 1
            self._cond.notify_all()
        if isinstance(result, BaseException):
            self.close()
            raise result
        images, labels, event = result
        if event is not None:
            import torch

            torch.cuda.current_stream(self.device).wait_event(event)
        return images, labels

    # -- worker side --------------------------------------------------------------------------------------------
    def batch_plan(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Case indices and augmentation seeds of batch ``index`` (a pure function of the seed and the index)."""
        rng = np.random.default_rng([self.seed, int(index)])
        return rng.integers(0, len(self._cases), self.batch_size), rng.integers(0, 2**31 - 1, self.batch_size)

    def _work(self) -> None:
        stream = None
        if self.device.type == "cuda":
            import torch

            stream = torch.cuda.Stream(self.device)
        while True:
            with self._cond:
                while not self._stop and self._next_task >= self._next_out + self.depth:
                    self._cond.wait()
                if self._stop:
                    return
                i = self._next_task
                if self.num_batches is not None and i >= self.num_batches:
                    return
                self._next_task += 1
                params = self._params
            try:
                result: Any = self._make_batch(i, params, stream)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                result = exc
            with self._cond:
                if self._stop:
                    return
                self._results[i] = result
                self._cond.notify_all()

    def _make_batch(self, index: int, params: AugmentParams, stream: Any):
        import torch

        which, seeds = self.batch_plan(index)
        n = self.batch_size
        if stream is None:
            images = torch.empty((n, 1, *self.out_shape), dtype=torch.float32)
            labels = torch.empty((n, *self.out_shape), dtype=torch.int64)
            for k in range(n):
                img, lab = self._cases[which[k]]
                o, lo = augment(img, lab, params, seed=int(seeds[k]), backend="cpu", out_shape=self.out_shape)
                images[k, 0] = torch.from_numpy(o)
                labels[k] = torch.from_numpy(lo.astype(np.int64, copy=False))
            return images, labels, None
        from .cuda import augment_cuda

        with torch.cuda.stream(stream):  # pragma: no cover - needs a GPU
            images = torch.empty((n, 1, *self.out_shape), dtype=torch.float32, device=self.device)
            labels = torch.empty((n, *self.out_shape), dtype=torch.int64, device=self.device)
            for k in range(n):
                img, lab = self._cases[which[k]]
                img_d = torch.from_numpy(img.astype(np.float32, copy=False)).pin_memory().to(self.device, non_blocking=True)
                lab_d = torch.from_numpy(lab.astype(np.int64, copy=False)).pin_memory().to(self.device, non_blocking=True)
                drawn = draw_transform(params, int(seeds[k]), img.shape, self.out_shape)
                drawn["out_shape"] = self.out_shape
                augment_cuda(img_d, lab_d, drawn, OUT_VALUE_HU, OUT_LABEL, out=(images[k, 0], labels[k]))
            event = torch.cuda.Event()
            event.record(stream)
        return images, labels, event
