import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from iquest_core.model import CheckpointMismatchError, LoopCoderConfig, LoopCoderForCausalLM
from tests.model.conftest import make_model


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("max_shard_bytes", [None, 20_000], ids=["single-file", "sharded"])
@pytest.mark.parametrize("preset", ["tiny", "tiny-dense"])
def test_save_and_reload_gives_identical_logits(tmp_path, preset, max_shard_bytes):
    model = make_model(preset)
    model.save_pretrained(tmp_path, max_shard_bytes=max_shard_bytes)
    sharded = (tmp_path / "model.safetensors.index.json").is_file()
    assert sharded == (max_shard_bytes is not None)
    assert (tmp_path / "model.safetensors").is_file() != sharded
    reloaded = LoopCoderForCausalLM.from_pretrained(tmp_path)
    saved_extras = {"architectures", "torch_dtype"}
    assert {k: v for k, v in reloaded.config.to_dict().items() if k not in saved_extras} == model.config.to_dict()
    assert all(p.requires_grad for p in reloaded.parameters())  # ready to train
    ids = torch.randint(0, model.config.vocab_size, (2, 25))
    assert torch.equal(_logits(model, ids), _logits(reloaded.eval(), ids))


def test_saving_again_replaces_earlier_weight_files(tmp_path):
    make_model(seed=1).save_pretrained(tmp_path, max_shard_bytes=20_000)
    model = make_model(seed=2)
    model.save_pretrained(tmp_path)
    assert not (tmp_path / "model.safetensors.index.json").exists()
    assert not list(tmp_path.glob("model-*-of-*.safetensors"))
    ids = torch.randint(0, model.config.vocab_size, (1, 9))
    assert torch.equal(_logits(LoopCoderForCausalLM.from_pretrained(tmp_path), ids), _logits(model, ids))


def test_published_key_names_and_shapes(tmp_path):
    model = make_model()
    model.save_pretrained(tmp_path)
    stored = load_file(tmp_path / "model.safetensors")
    c = model.config
    assert stored["model.gate_projections.1.weight"].shape == (c.num_attention_heads, c.head_dim)
    assert stored["model.gate_projections.1.bias"].shape == (c.num_attention_heads,)
    assert stored["model.layers.0.self_attn.k_proj.weight"].shape == (c.num_key_value_heads * c.head_dim,
                                                                      c.hidden_size)
    expected = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    for n in range(c.num_hidden_layers):
        expected |= {f"model.layers.{n}.self_attn.{p}_proj.weight" for p in "qkvo"}
        expected |= {f"model.layers.{n}.mlp.{p}_proj.weight" for p in ("gate", "up", "down")}
        expected |= {f"model.layers.{n}.{p}_layernorm.weight" for p in ("input", "post_attention")}
        expected |= {f"model.gate_projections.{n}.{p}" for p in ("weight", "bias")}
    assert set(stored) == expected
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["IQuestLoopCoderForCausalLM"] and config["model_type"] == "iquestloopcoder"


def test_40b_loop_layout_has_the_published_tensor_count_and_shapes():
    """The published 40B-Loop checkpoint holds 883 tensors: 80 layers x 9, the final norm, embeddings and
    lm_head, and 80 x 2 gate projections of shape (40, 128) / (40,). Built on the meta device (no memory)."""
    with torch.device("meta"):
        model = LoopCoderForCausalLM(LoopCoderConfig.preset("40B-Loop"))
    state = model.state_dict()
    assert len(state) == 883
    assert state["model.gate_projections.79.weight"].shape == (40, 128)
    assert state["model.gate_projections.79.bias"].shape == (40,)
    assert state["model.layers.79.self_attn.k_proj.weight"].shape == (8 * 128, 5120)
    assert state["lm_head.weight"].shape == (76800, 5120)
    assert 39e9 < sum(t.numel() for t in state.values()) < 41e9


def test_tied_embeddings_are_saved_once_and_stay_tied(tmp_path):
    model = make_model(tie_word_embeddings=True)
    model.save_pretrained(tmp_path)
    assert "lm_head.weight" not in load_file(tmp_path / "model.safetensors")
    reloaded = LoopCoderForCausalLM.from_pretrained(tmp_path)
    assert reloaded.lm_head.weight is reloaded.model.embed_tokens.weight
    assert torch.equal(reloaded.lm_head.weight, model.lm_head.weight)


def test_dtype_argument_casts_weights(tmp_path):
    make_model().save_pretrained(tmp_path)
    reloaded = LoopCoderForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert {p.dtype for p in reloaded.parameters()} == {torch.bfloat16}
    logits = _logits(reloaded, torch.randint(0, 128, (1, 12)))
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()


def test_mismatched_checkpoint_lists_every_problem(tmp_path):
    make_model().save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    del state["model.gate_projections.0.bias"], state["model.norm.weight"]
    state["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(8)
    state["model.layers.1.mlp.up_proj.weight"] = torch.zeros(3, 64)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointMismatchError) as info:
        LoopCoderForCausalLM.from_pretrained(tmp_path)
    assert info.value.missing == ["model.gate_projections.0.bias", "model.norm.weight"]
    assert info.value.unexpected == ["model.layers.0.self_attn.rotary_emb.inv_freq"]
    assert info.value.mis_shaped == ["model.layers.1.mlp.up_proj.weight (model [128, 64], checkpoint [3, 64])"]
    for key in ("model.norm.weight", "inv_freq", "up_proj"):
        assert key in str(info.value)


def test_loop_checkpoint_into_dense_config_is_rejected(tmp_path):
    make_model().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "loop_num": 1}))
    with pytest.raises(CheckpointMismatchError, match="unexpected keys.*gate_projections"):
        LoopCoderForCausalLM.from_pretrained(tmp_path)


def test_missing_files_raise(tmp_path):
    with pytest.raises(ValueError, match="path"):
        LoopCoderForCausalLM.from_pretrained(tmp_path / "nowhere")
    make_model().config.to_json(tmp_path)
    with pytest.raises(ValueError, match="model.safetensors"):
        LoopCoderForCausalLM.from_pretrained(tmp_path)
