"""Mixtures: DoReMi's update, components, token-share draws, replay rows in every global batch (exact share,
dp-invariant, exact resume), held-out documents never trained on."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from iquest_core.data.loader import BatchLoader, TextSource, rank_rows
from iquest_core.data.mixture import (ReplayLoader, doremi_update, draw_weights, expand_components, raise_to_floor,
                                      replay_rows)
from iquest_core.data.tokenizer import train_tokenizer

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()


@pytest.fixture(scope="module")
def tok():
    rng = random.Random(0)
    return train_tokenizer([" ".join(rng.choice(WORDS) for _ in range(100)) for _ in range(20)], vocab_size=300)


def _source(tok, seed: int, docs: int, words: int) -> TextSource:
    rng = random.Random(seed)
    return TextSource([{"text": " ".join(rng.choice(WORDS) for _ in range(words))} for _ in range(docs)],
                      tok, "instruct", "all")


def test_doremi_moves_weight_to_the_highest_excess_loss_and_keeps_the_floor():
    w = np.array([0.5, 0.3, 0.2])
    new = doremi_update(w, losses=np.array([2.0, 3.0, 5.0]), reference=np.array([1.9, 2.0, 2.0]), eta=1.0, floor=0.05)
    expected = w * np.exp([0.1, 1.0, 3.0])
    expected = 0.999 * expected / expected.sum() + 0.001 / 3  # DoReMi's smoothing c = 1e-3, no weight under the floor
    np.testing.assert_allclose(new, expected, rtol=1e-12)
    assert new.argmax() == 2 and new.sum() == pytest.approx(1.0)
    starved = doremi_update(np.array([1.0, 1.0, 1.0]), np.array([0.0, 0.0, 50.0]), np.zeros(3), eta=1.0, floor=0.1)
    np.testing.assert_allclose(starved, [0.1, 0.1, 0.8], rtol=1e-12)
    below = doremi_update(w, np.array([0.5, 1.0, 1.5]), np.array([2.0, 2.0, 2.0]), eta=5.0, floor=0.0, smoothing=0.0)
    np.testing.assert_allclose(below, w, rtol=1e-12)  # losses under the reference are no excess: no change
    smoothed = doremi_update(w, w, w, eta=1.0, floor=0.0, smoothing=0.3)
    np.testing.assert_allclose(smoothed, 0.7 * w + 0.1, rtol=1e-12)
    with pytest.raises(ValueError, match="data.mixture.floor"):
        doremi_update(w, w, w, eta=1.0, floor=0.4)
    with pytest.raises(ValueError, match="data.mixture.smoothing"):
        doremi_update(w, w, w, eta=1.0, floor=0.0, smoothing=1.5)


def test_floor_is_a_minimum_weight_not_a_pull_toward_uniform():
    w = np.array([0.2, 0.3, 0.5])
    # Every weight above the floor and no excess: nothing moves (a floor mixed in with uniform would).
    np.testing.assert_allclose(doremi_update(w, w, w + 1, eta=1.0, floor=0.15, smoothing=0.0), w, rtol=1e-12)
    # Weights under the floor are raised to it; the others keep their ratios, a raise may push another under.
    raised = raise_to_floor(np.array([0.01, 0.09, 0.3, 0.6]), 0.1)
    np.testing.assert_allclose(raised, [0.1, 0.1, 0.8 / 3, 1.6 / 3], rtol=1e-12)


def test_components_join_the_sources_scaled_and_named(tmp_path):
    (tmp_path / "code.toml").write_text('name = "code"\nsources = [{path = "a.jsonl", weight = 2.0}, '
                                        '{path = "b.jsonl"}]\n')
    data = {"sources": [{"path": "web.jsonl", "weight": 1.0}],
            "components": [{"path": str(tmp_path / "code.toml"), "scale": 0.5}]}
    assert expand_components(data) == [{"path": "web.jsonl", "weight": 1.0},
                                       {"path": "a.jsonl", "weight": 1.0, "name": "code/a.jsonl"},
                                       {"path": "b.jsonl", "weight": 0.5, "name": "code/b.jsonl"}]
    (tmp_path / "bad.toml").write_text('sources = [{file = "a.jsonl"}]\n')
    with pytest.raises(ValueError, match=r"data.components\[0\].path: .*bad.toml sources\[0\]"):
        expand_components({"sources": [], "components": [{"path": str(tmp_path / "bad.toml")}]})
    with pytest.raises(ValueError, match=r"data.components\[0\].path: cannot read"):
        expand_components({"sources": [], "components": [{"path": str(tmp_path / "missing.toml")}]})


def _shares(loader, steps: int, count: int) -> np.ndarray:
    tokens = np.zeros(count)
    for step in range(steps):
        for row in loader.next_batch(step):
            for k, (s, _) in enumerate(row.documents):
                tokens[s] += int(row.cu_seqlens[k + 1] - row.cu_seqlens[k])
    return tokens / tokens.sum()


def test_token_unit_realises_the_weights_as_token_shares(tok):
    sources = [_source(tok, 1, 60, 8), _source(tok, 2, 60, 40)]  # documents 5x apart in length
    weights = [0.5, 0.5]
    by_tokens = BatchLoader(sources, draw_weights(weights, sources, "tokens"), seq_len=64, rows_per_step=8, seed=0)
    by_docs = BatchLoader(sources, draw_weights(weights, sources, "documents"), seq_len=64, rows_per_step=8, seed=0)
    assert abs(_shares(by_tokens, 40, 2)[0] - 0.5) < 0.04
    assert _shares(by_docs, 40, 2)[0] < 0.3  # the control: equal document draws give the short source ~1/6


def test_replay_rows_hold_the_share_are_dp_invariant_and_resume_exactly(tok):
    def loader():
        main = BatchLoader([_source(tok, 3, 40, 20)], [1.0], seq_len=64, rows_per_step=6, seed=0)
        return ReplayLoader(main, BatchLoader([_source(tok, 4, 40, 20)], [1.0], seq_len=64, rows_per_step=2, seed=1))

    first = loader()
    batches = [first.next_batch(s) for s in range(3)]
    assert all(len(b) == 8 and {s for r in b[:6] for s, _ in r.documents} == {0}
               and {s for r in b[6:] for s, _ in r.documents} == {1} for b in batches)
    for world in (1, 2, 4):
        joined = [r for rank in range(world) for r in rank_rows(batches[0], rank, world)]
        assert all(torch.equal(a.input_ids, b.input_ids) for a, b in zip(joined, batches[0]))
    state = first.state_dict()
    later = [first.next_batch(s) for s in range(3, 7)]
    again = loader()
    again.load_state_dict(state)
    for step, rows in zip(range(3, 7), later):
        assert all(torch.equal(x.input_ids, y.input_ids) and torch.equal(x.labels, y.labels)
                   for x, y in zip(rows, again.next_batch(step)))


def test_replay_share_must_be_whole_rows():
    assert replay_rows(0.1, 10) == 1 and replay_rows(0.25, 8) == 2 and replay_rows(0.0, 8) == 0
    with pytest.raises(ValueError, match="data.replay.share: 0.1 of 4 rows"):
        replay_rows(0.1, 4)


def test_heldout_documents_are_never_drawn(tok):
    source = _source(tok, 5, 12, 10)
    loader = BatchLoader([source], [1.0], seq_len=64, rows_per_step=4, seed=0, heldout=3)
    drawn = {d for step in range(20) for row in loader.next_batch(step) for _, d in row.documents}
    assert drawn == set(range(9))
    held = loader.heldout_rows(0)
    assert sorted(d for row in held for _, d in row.documents) == [9, 10, 11]
    with pytest.raises(ValueError, match="data.mixture.heldout: source 0 has 12 documents"):
        BatchLoader([source], [1.0], seq_len=64, rows_per_step=4, seed=0, heldout=12)
