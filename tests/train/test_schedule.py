"""Schedules against their formulas, written out independently here in float64."""

import math

import pytest

from iquest_core.train.schedule import lr_factor


def test_cosine_with_extended_low_lr_tail():
    steps, warmup, r, tail = 40, 4, 0.1, 0.25
    got = [lr_factor(s, steps=steps, kind="cosine", warmup_steps=warmup, min_lr_ratio=r, tail_fraction=tail)
           for s in range(steps)]
    assert got[:warmup] == pytest.approx([(s + 1) / warmup for s in range(warmup)])
    decay = steps - 10 - warmup
    expected = [r + (1 - r) * 0.5 * (1 + math.cos(math.pi * i / decay)) for i in range(decay)]
    assert got[warmup:warmup + decay] == pytest.approx(expected, abs=1e-12)
    assert got[warmup + decay:] == [r] * 10                   # the tail: 10 steps at the floor
    assert all(a >= b for a, b in zip(got[warmup:], got[warmup + 1:]))  # never rises after warm-up
    assert got[warmup] == 1.0


def test_plain_cosine_has_no_tail():
    got = [lr_factor(s, steps=10, kind="cosine", warmup_steps=0, min_lr_ratio=0.0) for s in range(10)]
    assert got[0] == 1.0 and got[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 9 / 10)))


def test_warmup_stable_decay():
    steps, warmup = 50, 5
    got = [lr_factor(s, steps=steps, kind="wsd", warmup_steps=warmup, min_lr_ratio=0.2, decay_fraction=0.2)
           for s in range(steps)]
    assert got[warmup - 1] == 1.0 and set(got[warmup:40]) == {1.0}
    assert got[40:] == pytest.approx([1 - 0.8 * (k + 1) / 10 for k in range(10)])
    assert got[-1] == pytest.approx(0.2)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="step"):
        lr_factor(10, steps=10, kind="cosine", warmup_steps=1)
    with pytest.raises(ValueError, match="warmup_steps"):
        lr_factor(0, steps=10, kind="cosine", warmup_steps=10)
    with pytest.raises(ValueError, match="kind"):
        lr_factor(5, steps=10, kind="linear", warmup_steps=1)
    with pytest.raises(ValueError, match="tail_fraction"):
        lr_factor(5, steps=10, kind="cosine", warmup_steps=1, tail_fraction=0.95)
