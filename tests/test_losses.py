"""Losses: every property of SPEC section 5, gradients, MONAI agreement, class weights, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_ctorgans.nn import losses
from napari_ctorgans.organs import IGNORE_LABEL


def binary(p, y, fn=losses.iou_loss, **kw):
    """Loss of a binary problem given foreground probabilities p and labels y (1D)."""
    p = torch.as_tensor(p, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    # (N=1, C=1, n): a single foreground channel, one-hot (binary) target of the same shape
    return float(fn(p[None, None], y[None, None], **kw))


def iou_set(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = (a | b).sum()
    return 1.0 if union == 0 else 1 - (a & b).sum() / union


def dice_set(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else 1 - 2 * (a & b).sum() / s


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_equal_to_binary_score_for_binary_p(power):
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.random(50) < 0.4
        y = rng.random(50) < 0.5
        assert binary(p, y, power=power) == pytest.approx(iou_set(p, y), abs=1e-12)
        assert binary(p, y, losses.dice_loss, power=power) == pytest.approx(dice_set(p, y), abs=1e-12)


@pytest.mark.parametrize("fn", [losses.iou_loss, losses.dice_loss])
@pytest.mark.parametrize("power", [1.0, 3.0, 0.5])
def test_monotone_in_each_probability(fn, power):
    rng = np.random.default_rng(1)
    y = (rng.random(30) < 0.5).astype(float)
    p = rng.uniform(0.05, 0.95, 30)
    base = binary(p, y, fn, power=power)
    for k in range(30):
        q = p.copy()
        q[k] += 0.04
        change = binary(q, y, fn, power=power) - base
        if y[k] == 1:
            assert change < 0, "loss must decrease when p_k grows where y_k = 1"
        else:
            assert change > 0, "loss must increase when p_k grows where y_k = 0"


@pytest.mark.parametrize("fn", [losses.iou_loss, losses.dice_loss])
def test_extremes_only_at_y_and_its_complement(fn):
    rng = np.random.default_rng(2)
    y = (rng.random(12) < 0.5).astype(float)
    assert binary(y, y, fn) == 0.0
    assert binary(1 - y, y, fn) == 1.0
    for _ in range(200):
        p = rng.random(12)
        value = binary(p, y, fn)
        assert 0.0 < value < 1.0
    # binary p other than y or 1 - y are strictly inside too
    q = y.copy()
    q[0] = 1 - q[0]
    assert 0.0 < binary(q, y, fn) < 1.0


def test_value_at_p_equal_y_equal_zero_is_one():
    zero = np.zeros(8)
    assert binary(zero, zero) == 1.0
    assert binary(zero, zero, losses.dice_loss) == 1.0
    # continuous there: p -> 0 with y = 0 keeps the loss at 1
    assert binary(np.full(8, 1e-9), zero) == 1.0


def test_iou_triangle_inequality_on_random_sets_and_dice_counterexample():
    rng = np.random.default_rng(3)
    for _ in range(300):
        a, b, c = (rng.random(15) < rng.random() for _ in range(3))
        ab, bc, ac = (binary(u.astype(float), v.astype(float)) for u, v in ((a, b), (b, c), (a, c)))
        assert ac <= ab + bc + 1e-12
    # the paper's counter-example for Dice: p = (0, 1), y = (1, 0), p u y = (1, 1)
    p, y, union = np.array([0.0, 1.0]), np.array([1.0, 0.0]), np.array([1.0, 1.0])
    d = losses.dice_loss
    assert binary(p, y, d) > binary(p, union, d) + binary(union, y, d)  # 1 > 1/3 + 1/3
    assert binary(p, y) <= binary(p, union) + binary(union, y)  # IOU: 1 <= 1/2 + 1/2


def test_false_negative_and_false_positive_penalties():
    rng = np.random.default_rng(4)
    n = 40
    y = np.zeros(100)
    y[:n] = 1
    for _ in range(20):
        # false negatives: p <= y, error eps = ||p - y||_1
        p = y * rng.uniform(0.5, 1.0, 100)
        eps = np.abs(p - y).sum()
        assert binary(p, y) == pytest.approx(eps / n, rel=1e-12)
        # false positives: p >= y
        p = np.where(y == 1, 1.0, rng.uniform(0, 0.3, 100))
        eps = np.abs(p - y).sum()
        assert binary(p, y) == pytest.approx(eps / (n + eps), rel=1e-12)


def test_power_family_differs_for_soft_p_and_matches_formula():
    p = np.array([0.3, 0.8, 0.6, 0.1])
    y = np.array([0.0, 1.0, 1.0, 0.0])
    pm = p**2
    expected = 1 - (pm * y).sum() / (pm.sum() + y.sum() - (pm * y).sum())
    assert binary(p, y, power=2) == pytest.approx(expected, rel=1e-12)
    assert binary(p, y, power=2) != pytest.approx(binary(p, y, power=1))


def _random_case(n=2, c=4, shape=(5, 6, 7), seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, *shape, generator=g, dtype=dtype)
    target = torch.randint(0, c, (n, *shape), generator=g)
    return torch.softmax(logits, 1), target


def test_integer_and_one_hot_targets_agree_and_multiclass_is_mean_of_binary():
    probs, target = _random_case()
    one_hot = torch.nn.functional.one_hot(target, 4).movedim(-1, 1).double()
    for fn in (losses.iou_loss, losses.dice_loss):
        a, b = fn(probs, target), fn(probs, one_hot)
        assert float(a) == pytest.approx(float(b), rel=1e-12)
        per = fn(probs, target, reduction="none")
        assert per.shape == (2, 4)
        manual = [
            float(fn(probs[i : i + 1, c : c + 1], one_hot[i : i + 1, c : c + 1])) for i in range(2) for c in range(4)
        ]
        assert float(a) == pytest.approx(np.mean(manual), rel=1e-12)


@pytest.mark.parametrize("jaccard", [True, False])
def test_agrees_with_monai_diceloss(jaccard):
    monai_losses = pytest.importorskip("monai.losses")
    probs, target = _random_case(c=3, seed=5, dtype=torch.float32)
    one_hot = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float()
    ref = monai_losses.DiceLoss(jaccard=jaccard, smooth_nr=0.0, smooth_dr=1e-12)(probs, one_hot)
    ours = (losses.iou_loss if jaccard else losses.dice_loss)(probs, target)
    assert float(ours) == pytest.approx(float(ref), rel=1e-5)
    w = torch.tensor([0.2, 1.0, 3.0])
    ref_w = monai_losses.DiceLoss(jaccard=jaccard, smooth_nr=0.0, smooth_dr=1e-12, weight=w)(probs, one_hot)
    ours_w = (losses.iou_loss if jaccard else losses.dice_loss)(probs, target, weights=w)
    assert float(ours_w) == pytest.approx(float(ref_w), rel=1e-5)
    ref_b = monai_losses.DiceLoss(jaccard=jaccard, smooth_nr=0.0, smooth_dr=1e-12, batch=True)(probs, one_hot)
    ours_b = (losses.iou_loss if jaccard else losses.dice_loss)(probs, target, batch=True)
    assert float(ours_b) == pytest.approx(float(ref_b), rel=1e-5)


@pytest.mark.parametrize("name", ["iou", "dice", "cross_entropy"])
@pytest.mark.parametrize("power", [1.0, 2.0])
def test_gradcheck_float64(name, power):
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(1, 3, 3, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 3, (1, 3, 3, 2), generator=g)
    target[0, 0, 0, 0] = IGNORE_LABEL
    kw = {} if name == "cross_entropy" else {"power": power}
    loss = losses.get_loss(name, weighting=[0.5, 1.0, 2.0], **kw)
    assert torch.autograd.gradcheck(lambda z: loss(z, target), (logits,), eps=1e-6, atol=1e-5)


def test_ignore_index_leaves_voxels_out():
    probs, target = _random_case(c=3, seed=8)
    masked = target.clone()
    masked[:, :2] = IGNORE_LABEL
    for fn in (losses.iou_loss, losses.dice_loss, losses.weighted_cross_entropy):
        full = fn(probs[:, :, 2:], target[:, 2:])
        ign = fn(probs, masked, ignore_index=IGNORE_LABEL)
        assert float(ign) == pytest.approx(float(full), rel=1e-10)
    # gradient is zero on ignored voxels
    logits = torch.randn(2, 3, 5, 6, 7, dtype=torch.float64, requires_grad=True)
    losses.get_loss("iou")(logits, masked).backward()
    assert float(logits.grad[:, :, :2].abs().max()) == 0.0
    assert float(logits.grad[:, :, 2:].abs().max()) > 0.0


def test_weighted_cross_entropy_matches_formula_and_torch():
    p = torch.tensor([0.9, 0.2, 0.6, 0.1, 0.3], dtype=torch.float64)
    y = torch.tensor([1, 0, 1, 0, 0])
    probs = torch.stack([1 - p, p])[None]
    w = float(y.double().mean())
    yf = y.double()
    # the balancing the paper describes: foreground weight 1 - w, background weight w
    ce = -(yf * torch.log(p) + (1 - yf) * torch.log(1 - p))
    expected = ((yf * (1 - w) + (1 - yf) * w) * ce).mean()
    assert float(losses.weighted_cross_entropy(probs, y[None])) == pytest.approx(float(expected), rel=1e-12)
    # eq. 4 as printed, by explicit weights
    printed = (((1 - yf) * (1 - w) + yf * w) * ce).mean()
    got = losses.weighted_cross_entropy(probs, y[None], weights=(1 - w, w))
    assert float(got) == pytest.approx(float(printed), rel=1e-12)
    # uniform weights = torch's cross-entropy on log-probabilities
    probs3, target3 = _random_case(c=3, seed=9)
    ref = torch.nn.functional.nll_loss(torch.log(probs3), target3)
    assert float(losses.weighted_cross_entropy(probs3, target3, weights=[1, 1, 1])) == pytest.approx(float(ref))


def test_class_weights_schemes():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1 + [IGNORE_LABEL] * 5)
    n, L = 100, 3
    counts = np.array([90, 9, 1])
    np.testing.assert_allclose(losses.class_weights(labels, "uniform", num_classes=3).numpy(), 1.0)
    np.testing.assert_allclose(losses.class_weights(labels, "simple", num_classes=3).numpy(), n / (L * counts + 1), rtol=1e-6)
    np.testing.assert_allclose(
        losses.class_weights([labels[:50], torch.as_tensor(labels[50:])], "square", num_classes=3).numpy(),
        n / (L * counts**2 + 1), rtol=1e-6,
    )
    np.testing.assert_allclose(losses.class_weights(labels, "sqrt", num_classes=3).numpy(),
                               np.sqrt(n / (L * counts + 1)), rtol=1e-6)
    with pytest.raises(ValueError, match="'sqrt'"):
        losses.class_weights(labels, "log", num_classes=3)
    # every scheme is accepted by name by the loss factory too (batch statistics), with the same weights
    target = torch.as_tensor(labels.reshape(1, 105, 1, 1) % 255).long()
    logits = torch.randn(1, 3, 105, 1, 1, generator=torch.Generator().manual_seed(0))
    for scheme in losses.WEIGHTING_SCHEMES:
        by_name = losses.get_loss("iou", weighting=scheme)(logits, target)
        numbers = losses.get_loss("iou", weighting=losses.class_weights(target, scheme, num_classes=3))(logits, target)
        torch.testing.assert_close(by_name, numbers)
    with pytest.raises(ValueError, match="'sqrt' or C numbers"):
        losses.get_loss("iou", weighting="log")
    # an absent class gets N / eps (no division by zero)
    w = losses.class_weights(np.zeros(10, np.uint8), "simple", num_classes=2)
    assert float(w[1]) == 10.0


def test_class_weights_default_to_the_organ_table():
    """API.md gives ``class_weights(labels, scheme=...)``: without num_classes, the organ table's default classes
    (background and the five CT-ORG organs)."""
    import napari_ctorgans as ct
    from napari_ctorgans.organs import DEFAULT_CLASSES

    labels = np.array([0] * 80 + [1] * 10 + [3] * 6 + [5] * 4)
    w = ct.losses.class_weights(labels, scheme="simple")
    assert w.shape == (DEFAULT_CLASSES,) == (6,)
    torch.testing.assert_close(w, losses.class_weights(labels, "simple", num_classes=6))
    counts = np.array([80, 10, 0, 6, 0, 4])
    np.testing.assert_allclose(w.numpy(), 100 / (6 * counts + 1), rtol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        ct.losses.class_weights(np.array([0, 6]), scheme="simple")


def test_get_loss_from_logits_and_probs_and_trains_down():
    probs, target = _random_case(c=3, seed=10)
    logits = torch.log(probs)
    for name in ("iou", "dice", "wce"):
        a = losses.get_loss(name, power=1)(logits, target)
        b = losses.get_loss(name, from_logits=False)(probs, target)
        assert float(a) == pytest.approx(float(b), rel=1e-9)
    # simple weighting from batch statistics equals passing class_weights explicitly
    w = losses.class_weights(target, "simple", num_classes=3)
    a = losses.get_loss("iou", weighting="simple")(logits, target)
    b = losses.iou_loss(probs, target, weights=w)
    assert float(a) == pytest.approx(float(b), rel=1e-6)
    # a few gradient steps on free logits reduce the IOU loss
    z = torch.zeros(1, 3, 4, 4, 4, requires_grad=True)
    t = torch.randint(0, 3, (1, 4, 4, 4), generator=torch.Generator().manual_seed(0))
    loss = losses.get_loss("iou")
    opt = torch.optim.Adam([z], lr=0.5)
    first = float(loss(z, t).detach())
    for _ in range(30):
        opt.zero_grad()
        value = loss(z, t)
        value.backward()
        opt.step()
    assert float(loss(z, t).detach()) < 0.2 * first


def test_bad_input_errors_name_the_argument():
    probs, target = _random_case(c=3)
    with pytest.raises(ValueError, match="probs must sum to one"):
        losses.iou_loss(probs * 0.5, target)
    with pytest.raises(ValueError, match=r"probs must lie in \[0, 1\]"):
        losses.dice_loss(probs * 3, target)
    with pytest.raises(ValueError, match="target contains label 3 but probs has 3 classes"):
        losses.iou_loss(probs, torch.full_like(target, 3))
    with pytest.raises(ValueError, match="target has shape"):
        losses.iou_loss(probs, target[:, :-1])
    with pytest.raises(ValueError, match="does not match probs"):
        losses.iou_loss(probs, probs[:, :2])
    bad = probs.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="probs contains NaN"):
        losses.iou_loss(bad, target)
    with pytest.raises(ValueError, match="logits contain NaN"):
        losses.get_loss("iou")(torch.log(bad), target)
    with pytest.raises(ValueError, match="power must be a positive"):
        losses.iou_loss(probs, target, power=0)
    with pytest.raises(ValueError, match="weights must have one value per class"):
        losses.iou_loss(probs, target, weights=[1, 2])
    with pytest.raises(TypeError, match="probs must be a torch.Tensor"):
        losses.iou_loss(probs.numpy(), target)
    with pytest.raises(ValueError, match="unknown loss 'foo'"):
        losses.get_loss("foo")
    with pytest.raises(ValueError, match="scheme must be"):
        losses.class_weights(target, "cubic", num_classes=3)
    with pytest.raises(ValueError, match="outside"):
        losses.class_weights(target, "simple", num_classes=2)


def test_power_below_one_has_finite_gradient_at_zero():
    probs = torch.tensor([[[0.0, 0.3, 1.0, 0.0], [1.0, 0.7, 0.0, 1.0]]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[0, 0, 1, 1]])
    loss = losses.iou_loss(probs, target, power=0.5)
    loss.backward()
    assert torch.isfinite(probs.grad).all()
    # value is exact: p = 0 contributes 0 to every sum
    p = probs.detach()
    pm = p**0.5
    y = torch.nn.functional.one_hot(target, 2).movedim(-1, 1).double()
    inter, sp, sy = (pm * y).sum(-1), pm.sum(-1), y.sum(-1)
    assert float(loss) == pytest.approx(float((1 - inter / (sp + sy - inter)).mean()), rel=1e-12)


def test_cross_entropy_term_equals_torch_and_revives_a_saturated_class():
    probs, target = _random_case(c=3, seed=11)
    logits = torch.log(probs)
    target = target.clone()
    target[0, 0, 0] = IGNORE_LABEL
    for name, fn in (("iou", losses.iou_loss), ("dice", losses.dice_loss)):
        got = losses.get_loss(name, cross_entropy_weight=0.5, batch=True)(logits, target)
        keep = target != IGNORE_LABEL
        overlap = fn(probs.permute(0, 2, 3, 4, 1)[keep][None].permute(0, 2, 1), target[keep][None], batch=True)
        ce = torch.nn.functional.cross_entropy(logits, target, ignore_index=IGNORE_LABEL)
        assert float(got) == pytest.approx(float(overlap + 0.5 * ce), rel=1e-5)
    # class 2 is present but its softmax is saturated near 0 everywhere: the overlap gradient on its logits all
    # but vanishes, the cross-entropy gradient does not
    t = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    t[0, :2] = 2
    z = torch.zeros(1, 3, 4, 4, 4)
    z[:, 2] = -14.0
    grads = []
    for w in (0.0, 1.0):
        zz = z.clone().requires_grad_(True)
        losses.get_loss("iou", cross_entropy_weight=w, batch=True)(zz, t).backward()
        grads.append(float(zz.grad[0, 2][t[0] == 2].abs().max()))
    assert grads[0] < 1e-6 < 1e-3 < grads[1]
    with pytest.raises(ValueError, match="cross_entropy_weight"):
        losses.get_loss("cross_entropy", cross_entropy_weight=1.0)
    with pytest.raises(ValueError, match="cross_entropy_weight must be"):
        losses.get_loss("iou", cross_entropy_weight=-1.0)
