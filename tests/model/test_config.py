import json

import pytest
import torch

from iquest_core.model import PRESETS, LoopCoderConfig, LoopCoderForCausalLM


def test_json_round_trip_keeps_unknown_fields(tmp_path):
    written = {**PRESETS["tiny"], "architectures": ["IQuestLoopCoderForCausalLM"], "torch_dtype": "bfloat16",
               "auto_map": {"AutoConfig": "configuration_iquestloopcoder.IQuestLoopCoderConfig"},
               "model_type": "iquestloopcoder", "use_cache": True}
    (tmp_path / "config.json").write_text(json.dumps(written))
    config = LoopCoderConfig.from_json(tmp_path)
    assert config.loop_num == written["loop_num"] and config.head_dim == written["head_dim"]
    assert config.extra == {k: written[k] for k in ("architectures", "torch_dtype", "auto_map", "use_cache")}
    out = tmp_path / "out"
    out.mkdir()
    config.to_json(out)
    reread = json.loads((out / "config.json").read_text())
    assert {k: reread[k] for k in written} == written
    assert LoopCoderConfig.from_json(out) == config


def test_40b_loop_preset_matches_published_values():
    config = LoopCoderConfig.preset("40B-Loop")
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads,
            config.head_dim, config.intermediate_size, config.vocab_size) == (5120, 80, 40, 8, 128, 27648, 76800)
    assert (config.rope_theta, config.max_position_embeddings, config.loop_num, config.loop_window_size,
            config.tie_word_embeddings) == (500000.0, 131072, 2, 64, False)


def test_dense_config_without_loop_fields_is_one_loop():
    without_loop_num = {k: v for k, v in PRESETS["tiny"].items() if k != "loop_num"}
    assert LoopCoderConfig.from_dict({**without_loop_num, "model_type": "llama"}).loop_num == 1
    assert LoopCoderConfig.from_dict(without_loop_num).loop_num == 2  # LoopCoder's default model_type


def test_head_dim_defaults_to_hidden_over_heads():
    config = LoopCoderConfig.preset("tiny", head_dim=None, hidden_size=96, num_attention_heads=4)
    assert config.head_dim == 24


def test_transformers5_rope_parameters_are_read():
    values = {k: v for k, v in PRESETS["tiny"].items() if k != "rope_theta"}
    config = LoopCoderConfig.from_dict({**values, "rope_parameters": {"rope_type": "default", "rope_theta": 1234.0}})
    assert config.rope_theta == 1234.0


@pytest.mark.parametrize("field, value", [("num_key_value_heads", 3), ("hidden_act", "gelu"), ("loop_num", 0),
                                          ("loop_window_size", -1), ("rope_scaling", {"rope_type": "yarn"}),
                                          ("rope_scaling", "linear"), ("attention_bias", True), ("vocab_size", 1.5)])
def test_bad_values_raise_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        LoopCoderConfig.preset("tiny", **{field: value})


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="name"):
        LoopCoderConfig.preset("7B-nonexistent")
    with pytest.raises(ValueError, match="path"):
        LoopCoderConfig.from_json(tmp_path)


@pytest.mark.parametrize("name, billions", [("7B", 7), ("14B", 14), ("40B", 40), ("40B-Loop", 40)])
def test_published_sizes_have_their_nominal_parameter_counts(name, billions):
    with torch.device("meta"):
        model = LoopCoderForCausalLM(LoopCoderConfig.preset(name))
    params = sum(p.numel() for p in model.parameters()) / 1e9
    assert billions * 0.9 < params < billions * 1.1
    assert hasattr(model.model, "gate_projections") == name.endswith("Loop")
