"""PrefetchQueue on the CPU: order, determinism per seed, prefetching, shutdown, exceptions."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

import napari_ctorgans as ct
from napari_ctorgans.augment import AugmentParams, PrefetchQueue, augment

OUT = (16, 20, 20)


@pytest.fixture(scope="module")
def cases(phantom):
    vol, lab = phantom
    img = vol.array[::2, ::2, ::2].astype(np.float32).copy()
    lab = lab[::2, ::2, ::2].copy()
    return [(img, lab), (img[:, :, ::-1].copy(), lab[:, :, ::-1].copy()), (img[::-1].copy(), lab[::-1].copy())]


def _take(q, n):
    return [next(q) for _ in range(n)]


def test_batches_in_order_and_equal_to_augment(cases):
    params = AugmentParams(elastic_magnitude=0)
    with PrefetchQueue(cases, params, out_shape=OUT, batch_size=2, seed=5, workers=2, depth=3) as q:
        batches = _take(q, 5)
        plans = [q.batch_plan(i) for i in range(5)]
    for (images, labels), (which, seeds) in zip(batches, plans):
        assert images.shape == (2, 1, *OUT) and images.dtype == torch.float32
        assert labels.shape == (2, *OUT) and labels.dtype == torch.int64
        for k in range(2):
            img, lab = cases[which[k]]
            ref, ref_lab = augment(img, lab, params, seed=int(seeds[k]), out_shape=OUT)
            np.testing.assert_array_equal(images[k, 0].numpy(), ref)
            np.testing.assert_array_equal(labels[k].numpy(), ref_lab)


def test_deterministic_per_seed_whatever_the_workers(cases):
    params = AugmentParams()
    runs = []
    for workers, seed in ((1, 3), (3, 3), (2, 4)):
        with PrefetchQueue(cases, params, out_shape=OUT, batch_size=2, seed=seed, workers=workers) as q:
            runs.append(torch.cat([b[0] for b in _take(q, 4)]))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])
    assert ct.PrefetchQueue is PrefetchQueue


def test_prefetches_while_consumer_works(cases):
    with PrefetchQueue(cases, AugmentParams(), out_shape=OUT, depth=3) as q:
        next(q)
        time.sleep(1.5)  # the "training step": workers fill the queue meanwhile
        with q._cond:
            ready = len(q._results)
        assert ready == 3  # exactly `depth` batches ahead, no more
        t0 = time.perf_counter()
        _take(q, 3)
        assert time.perf_counter() - t0 < 0.5  # were ready: no waiting


def test_num_batches_and_clean_shutdown(cases):
    before = threading.active_count()
    q = PrefetchQueue(cases, None, out_shape=OUT, num_batches=3, workers=2)
    assert len(list(q)) == 3
    q.close()
    q.close()
    assert q.closed
    with pytest.raises(StopIteration):
        next(q)
    q2 = PrefetchQueue(cases, AugmentParams(), out_shape=OUT, workers=3, depth=2)
    next(q2)
    q2.close()  # workers blocked on a full queue must wake up and exit
    assert not any(t.is_alive() for t in q2._threads)
    assert threading.active_count() <= before


def test_worker_exception_surfaces_in_consumer(cases):
    bad = [(cases[0][0], cases[0][1]), (np.zeros((4, 4, 4), np.complex64), np.zeros((4, 4, 4), np.uint8))]
    q = PrefetchQueue(bad, AugmentParams(), out_shape=OUT, batch_size=4, seed=0)
    with pytest.raises(TypeError, match="image must be a real-valued array"):
        for _ in range(10):
            next(q)
    assert q.closed
    assert not any(t.is_alive() for t in q._threads)


def test_set_params_switches_augmentation_on(cases):
    with PrefetchQueue(cases, None, out_shape=OUT, depth=1, seed=1) as q:
        images, _ = next(q)
        which, _ = q.batch_plan(0)
        img = cases[which[0]][0]
        ref, _ = augment(img, None, None, seed=0, out_shape=OUT)
        np.testing.assert_array_equal(images[0, 0].numpy(), ref)
        q.set_params(AugmentParams(noise_sigma=(50, 50)))
        later = _take(q, 3)[-1][0]
        assert later.std() > 0


def test_bad_arguments(cases):
    with pytest.raises(ValueError, match="cases is empty"):
        PrefetchQueue([], None, out_shape=OUT)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        PrefetchQueue(cases, None, out_shape=OUT, batch_size=0)
    with pytest.raises(ValueError, match="cases\\[0\\] must hold a 3D image and labels of the same shape"):
        PrefetchQueue([(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)))], None, out_shape=OUT)
    with pytest.raises(TypeError, match="params must be an AugmentParams or None"):
        PrefetchQueue(cases, {"a": 1}, out_shape=OUT)
