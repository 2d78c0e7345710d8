"""Replay in RL (iquest_core/rl/replay.py): the auxiliary next-token loss on earlier stages' data, its
weight, its place in the checkpoint, and its recipe checks."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from iquest_core.model import LoopCoderConfig, LoopCoderForCausalLM
from iquest_core.rl import cli as rl_cli, grpo as rl, tasks as rl_tasks
from iquest_core.rl.recipe import GroupSampling, RLData, load_rl_recipe
from iquest_core.rl.replay import ReplayLoss, build_replay
from iquest_core.train.metrics import read_metrics
from iquest_core.train.recipe import RecipeError
from iquest_core.train.schema import Optim, Replay, Source
from tests.rl.scored_pair import scored_pair


@pytest.fixture
def earlier(tmp_path):
    """An earlier stage's data: text records in the byte vocabulary."""
    path = tmp_path / "earlier.jsonl"
    path.write_text("".join(json.dumps({"text": f"def g{i}(y):\n    return y * {i} + {i % 7}\n"}) + "\n"
                            for i in range(40)))
    return str(path)


def _data(path: str, weight: float, share: float = 0.25) -> RLData:
    return RLData(replay=Replay(sources=[Source(path=path)], share=share, weight=weight), tokenizer="", seq_len=64)


def test_the_update_adds_weight_times_the_replay_batch_gradient(earlier):
    """One SGD step (lr 1, no clipping) with replay weight 0.5 differs from the plain GRPO step by exactly
    -0.5 x the gradient of the token-mean next-token loss on the replay loader's first batch."""
    torch.manual_seed(0)
    policy = LoopCoderForCausalLM(LoopCoderConfig.preset("tiny", vocab_size=rl_tasks.VOCAB_SIZE, eos_token_id=0))
    pair, prompt_len = scored_pair()
    kept = [pair]
    cfg = GroupSampling(group_size=2, temperature=1.0, epochs=1, minibatch=2, eps_low=0.2, eps_high=0.28)

    def step(replay):
        model = copy.deepcopy(policy)
        stats = rl.policy_update(model, torch.optim.SGD(model.parameters(), lr=1.0), kept, cfg,
                                 Optim(max_grad_norm=1e9), prompt_len, torch.Generator().manual_seed(0), replay)
        return model, stats

    replay = ReplayLoss(_data(earlier, 0.5), minibatch=8, vocab_size=rl_tasks.VOCAB_SIZE, seed=1)
    with_replay, stats = step(replay)
    plain, plain_stats = step(None)
    assert replay.drawn == 1 and "replay_loss" in stats and "replay_loss" not in plain_stats
    assert stats["loss"] == plain_stats["loss"]  # the GRPO loss itself is reported unchanged

    reference = copy.deepcopy(policy)
    fresh = ReplayLoss(_data(earlier, 0.5), minibatch=8, vocab_size=rl_tasks.VOCAB_SIZE, seed=1)
    auxiliary = fresh.unweighted(reference)
    assert auxiliary.item() == pytest.approx(stats["replay_loss"], rel=1e-6)
    auxiliary.backward()
    rows = fresh.loader.next_batch(1)  # two rows of 64 tokens a batch: round(0.25 x 8)
    assert len(rows) == 2 and all(r.input_ids.shape == (64,) for r in rows)
    for (name, a), b, g in zip(with_replay.named_parameters(), plain.parameters(), reference.parameters()):
        torch.testing.assert_close(b - a, 0.5 * g.grad, rtol=1e-4, atol=1e-6, msg=name)


def _run(out, *sets, resume=False):
    """A 1- or 2-step `iquest rl` run; its metrics (without wall times) and final policy parameters."""
    settings = ["pretrain.steps=4", "pretrain.batch=8", "rl.prompts_per_step=2", "rl.group_size=4",
                "rl.max_new_tokens=10", "rl.minibatch=4", "checkpoint_every=1", "sandbox.workers=2",
                "sandbox.timeout_s=5.0", "greedy_eval=false", *sets]
    args = ["--recipe", "rl", "--output", str(out), *(["--resume"] if resume else [])]
    for s in settings:
        args += ["--set", s]
    assert rl_cli.main(args) == 0
    metrics = [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(out)]
    return metrics, LoopCoderForCausalLM.from_pretrained(out / "policy").state_dict()


def _replay_sets(path: str, weight: float) -> list[str]:
    return [f'data.replay={{sources=[{{path="{path}"}}], share=0.5, weight={weight}}}', "data.seq_len=64"]


def test_weight_zero_is_the_plain_run_bitwise_and_replay_resumes_bitwise(tmp_path, earlier):
    plain, plain_params = _run(tmp_path / "plain", "steps=2")
    assert any(r["kept_groups"] for r in plain)  # some policy update happened, so replay had a chance to act
    zero, zero_params = _run(tmp_path / "zero", "steps=2", *_replay_sets(earlier, 0.0))
    assert zero == plain
    assert all(torch.equal(plain_params[k], zero_params[k]) for k in plain_params)

    replayed, params = _run(tmp_path / "replay", "steps=2", *_replay_sets(earlier, 1.0))
    assert any("replay_loss" in r for r in replayed)
    assert not all(torch.equal(plain_params[k], params[k]) for k in plain_params)

    _run(tmp_path / "resumed", "steps=1", *_replay_sets(earlier, 1.0))
    state = json.loads((tmp_path / "resumed" / "checkpoints" / "step-1" / "trainer.json").read_text())
    # a batch per policy step: 2 epochs x (kept groups x 4 samples / minibatch 4) steps
    assert state["replay"]["drawn"] == 2 * replayed[0]["kept_groups"]
    resumed, resumed_params = _run(tmp_path / "resumed", "steps=2", *_replay_sets(earlier, 1.0), resume=True)
    assert resumed == replayed
    assert all(torch.equal(params[k], resumed_params[k]) for k in params)


def test_replay_recipe_checks_name_the_key(earlier):
    for sets, match in ((["data.replay.share=0.5"], "data.replay"),
                        (_replay_sets(earlier, -1.0), "data.replay.weight"),
                        ([*_replay_sets(earlier, 1.0), "data.replay.share=0.01"], "data.replay.share"),
                        (["data.seq_len=0"], "seq_len")):
        with pytest.raises(RecipeError, match=match):
            load_rl_recipe("rl", sets)
    recipe = load_rl_recipe("rl", _replay_sets(earlier, 0.0))
    assert build_replay(recipe, rl_tasks.VOCAB_SIZE) is None


def test_chat_records_need_a_tokenizer_directory(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(ValueError, match="data.tokenizer"):
        ReplayLoss(_data(str(path), 1.0), minibatch=8, vocab_size=rl_tasks.VOCAB_SIZE, seed=1)


def test_a_missing_replay_source_is_named_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    assert rl_cli.main(["--recipe", "rl", "--output", str(out), "--set",
                        f'data.replay={{sources=[{{path="{tmp_path / "gone.jsonl"}"}}], share=0.5}}']) == 2
    assert "data.replay.sources[0].path" in capsys.readouterr().err
    assert not out.exists()
