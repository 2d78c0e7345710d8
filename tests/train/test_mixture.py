"""Mixtures in the trainer: a dynamic mixture's weights move toward the source of highest excess loss and
resume bitwise; replay keeps its share of every step's tokens; components' realised token shares match
the specified mixture; bad mixture keys are named."""

from __future__ import annotations

import json
import random

import pytest
import torch

from iquest_core.train.export import load_checkpoint_model
from iquest_core.train.metrics import read_metrics
from iquest_core.train.recipe import RecipeError, load_recipe
from iquest_core.train.trainer import train

from tests.train.helpers import SMALL, losses, small_recipe
from tests.train.test_trainer import _train_until_crash


def _write(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return str(path)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Three sources of rising difficulty: a constant string, a 12-entry key-value table, random numbers."""
    root, rng = tmp_path_factory.mktemp("sources"), random.Random(0)
    easy = _write(root / "easy.jsonl", ["ab ab ab ab ab ab ab ab ab ab"] * 40)
    mid = _write(root / "mid.jsonl", [" ".join(f"k{j}=v{j * 7 % 12}" for j in rng.sample(range(12), 6))
                                      for _ in range(40)])
    hard = _write(root / "hard.jsonl", [" ".join(str(rng.randrange(1000)) for _ in range(12)) for _ in range(40)])
    return easy, mid, hard


def _dynamic(sources, *extra):
    table = ", ".join(f'{{path="{p}", weight=1.0}}' for p in sources)
    return small_recipe("steps=6", "checkpoint_every=3", f"data.sources=[{table}]",
                        'data.mixture={kind="dynamic", every=2, eta=0.5, floor=0.05, heldout=4, unit="tokens"}',
                        *extra)


def test_dynamic_weights_move_to_the_highest_excess_loss(tmp_path, sources):
    train(_dynamic(sources), tmp_path)
    updates = [r for r in read_metrics(tmp_path) if "mixture" in r]
    assert [r["step"] for r in updates] == [2, 4, 6]
    for r in updates:
        assert r["mixture"].index(max(r["mixture"])) == r["heldout_loss"].index(max(r["heldout_loss"]))
        assert min(r["mixture"]) >= 0.05 - 1e-12 and sum(r["mixture"]) == pytest.approx(1.0)
    assert updates[-1]["mixture"][2] > 1 / 3 + 0.05  # the random numbers gain weight
    assert (tmp_path / "mixture.png").is_file()


def test_dynamic_mixture_resumes_bitwise(tmp_path, sources, monkeypatch):
    recipe = _dynamic(sources)
    train(recipe, tmp_path / "whole")
    _train_until_crash(recipe, tmp_path / "cut", 4, monkeypatch)  # after the update of step 2, before step 4's
    train(recipe, tmp_path / "cut", resume=True)
    whole, cut = read_metrics(tmp_path / "whole"), read_metrics(tmp_path / "cut")
    assert [r.get("mixture") for r in whole] == [r.get("mixture") for r in cut]
    assert losses(tmp_path / "whole") == losses(tmp_path / "cut")
    a = load_checkpoint_model(tmp_path / "whole" / "checkpoints" / "step-6").state_dict()
    b = load_checkpoint_model(tmp_path / "cut" / "checkpoints" / "step-6").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_data_seed_sets_the_data_order(tmp_path, sources):
    table = ", ".join(f'{{path="{p}"}}' for p in sources)
    for name, extra in (("default", ()), ("same", ("data.seed=0",)), ("other", ("data.seed=7",))):
        train(small_recipe("steps=2", "seed=0", f"data.sources=[{table}]", *extra), tmp_path / name)
    drawn = {name: [r["source_tokens"] for r in read_metrics(tmp_path / name)] for name in ("default", "same", "other")}
    assert losses(tmp_path / "default") == losses(tmp_path / "same") and drawn["default"] == drawn["same"]
    assert drawn["default"] != drawn["other"]


def test_replay_keeps_its_share_of_every_step(tmp_path, sources):
    easy, mid, hard = sources
    recipe = small_recipe("steps=3", "batch_tokens=512", f'data.sources=[{{path="{mid}"}}]',
                          f'data.replay={{sources=[{{path="{hard}"}}], share=0.25}}')
    train(recipe, tmp_path)
    for record in read_metrics(tmp_path):
        main, replayed = record["source_tokens"]
        assert replayed > 0 and main > 0
        assert abs(replayed / (main + replayed) - 0.25) < 0.08  # 2 of 8 full rows (less what has no label)


def test_component_token_shares_match_the_mixture(tmp_path, sources):
    easy, mid, hard = sources
    (tmp_path / "mix.toml").write_text(f'name = "syn"\nsources = [{{path = "{mid}", weight = 3.0}}, '
                                       f'{{path = "{hard}", weight = 1.0}}]\n')
    recipe = load_recipe("tiny", [*SMALL, "steps=12", "batch_tokens=1024", f'data.sources=[{{path="{easy}", weight=2.0}}]',
                                  f'data.components=[{{path="{tmp_path / "mix.toml"}", scale=0.5}}]',
                                  'data.mixture.unit="tokens"'])
    assert [s.name for s in recipe.data.sources] == ["", f"syn/{mid}", f"syn/{hard}"]
    train(recipe, tmp_path / "run")
    totals = [sum(r["source_tokens"][k] for r in read_metrics(tmp_path / "run")) for k in range(3)]
    shares = [t / sum(totals) for t in totals]
    assert shares == pytest.approx([0.5, 0.375, 0.125], abs=0.05), shares


@pytest.mark.parametrize("sets, message", [
    (['data.mixture={kind="dynamic", every=2, reference=[1.0, 2.0]}'], "data.mixture.reference: expected one loss"),
    (['data.mixture={kind="dynamic", every=0}'], "data.mixture: a dynamic mixture needs every >= 1"),
    (['data.mixture={kind="dynamic", every=2, smoothing=2.0}'], "data.mixture.smoothing"),
    (["data.replay.share=0.2"], "data.replay: expected sources with a share"),
    (['data.mixture.unit="bytes"'], "data.mixture.unit"),
    (['data.components=[{path="/nonexistent.toml"}]'], r"data.components\[0\].path: cannot read"),
])
def test_bad_mixture_keys_are_named(sets, message):
    with pytest.raises(RecipeError, match=message):
        small_recipe(*sets)
