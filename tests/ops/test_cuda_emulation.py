"""CPU checks of the CUDA kernels without a GPU: the numpy emulations of tests/ops/cuda_emulation.

fragment_layouts: the ldmatrix / mma.m16n8k16 fragment address formulas of flash_common.cuh feed the tensor
cores the intended sub-matrices, and the swizzled shared-memory tiles are bank-conflict free.
tile_algorithm: a tile-level numpy port of the kernels' control flow (ranges, masks, full-tile shortcut,
online softmax, GQA walk, gate coefficients) matches the float64 reference, forward and backward.
Neither runs the CUDA code; each run draws fresh random tiles / inputs (the seed is printed on failure).
"""

import random

import pytest

from tests.ops.cuda_emulation import fragment_layouts, tile_algorithm


@pytest.fixture
def seed():
    value = random.SystemRandom().randrange(2**31)
    print(f"seed={value}")
    return value


def test_fragment_layouts_and_swizzle(seed):
    result = fragment_layouts.check_fragment_layouts(seed=seed)
    assert result["tiles"] == 6  # 3 tiles x head dims 64, 128
    assert result["phases"] == 8  # 4 ldmatrix phases x 2 head dims, each hitting 8 distinct bank groups
    assert result["max_error"] < 1e-9


def test_fragment_check_catches_a_wrong_address_formula(seed, monkeypatch):
    ldsm_a = fragment_layouts.ldsm_a
    monkeypatch.setattr(fragment_layouts, "ldsm_a", lambda flat, D, r0, k0: ldsm_a(flat, D, r0, (k0 + 8) % D))
    with pytest.raises(AssertionError):
        fragment_layouts.check_fragment_layouts(seed=seed)


# The scripts' cases (head_dim 16: the control flow does not depend on it) plus cases at the CUDA head dims.
LOOP_CASES = tile_algorithm.LOOP_CASES + [((1, 129), 3, 1, 64, 16, None), ((130,), 2, 2, 128, 1, [0, 1, 65, 130])]
ATTENTION_CASES = tile_algorithm.ATTENTION_CASES + [(70, 100, 3, 3, 64, 0, 30, 0), (100, 64, 2, 1, 64, 50, 0, 20)]


@pytest.mark.parametrize("case", LOOP_CASES, ids=str)
def test_tile_algorithm_loop_attention(case, seed):
    errors = tile_algorithm.loop_case(*case, seed=seed)
    assert set(errors) == {"out", "dq", "dkg", "dvg", "dkl", "dvl", "dw", "db"}
    assert all(0 <= e < 1e-9 for e in errors.values()), errors


@pytest.mark.parametrize("case", ATTENTION_CASES, ids=str)
def test_tile_algorithm_attention_with_lse(case, seed):
    errors = tile_algorithm.attn_case(*case, seed=seed)
    assert set(errors) == {"out", "lse", "dq", "dk", "dv"}
    assert all(0 <= e < 1e-9 for e in errors.values()), errors


def test_tile_algorithm_catches_a_skipped_mask(seed, monkeypatch):
    """Treating every tile as fully visible (no causal/window mask) must fail the port's check."""
    monkeypatch.setattr(tile_algorithm, "full_block", lambda *args: True)
    with pytest.raises(AssertionError):
        tile_algorithm.loop_case((1, 130), 2, 2, 16, 24, seed=seed)
