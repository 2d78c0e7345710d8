import pytest
import torch
import torch.nn.functional as F

from iquest_core.model import LoopCoderForCausalLM
from iquest_core.model.backends import LOOP_ATTENTION
from tests.helpers import max_err, rel_err
from tests.model.conftest import make_model

TOL = 1e-5


def test_dense_model_matches_transformers_llama():
    transformers = pytest.importorskip("transformers")
    model = make_model("tiny-dense", seed=1)
    c = model.config
    llama_config = transformers.LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads, head_dim=c.head_dim, rms_norm_eps=c.rms_norm_eps,
        rope_theta=c.rope_theta, max_position_embeddings=c.max_position_embeddings,
        tie_word_embeddings=c.tie_word_embeddings, attn_implementation="eager")
    llama = transformers.LlamaForCausalLM(llama_config).eval()
    llama.load_state_dict(model.state_dict(), strict=True)
    ids = torch.randint(0, c.vocab_size, (2, 50))
    with torch.no_grad():
        expected = llama(ids).logits
        actual = model(ids).logits
    assert max_err(actual, expected) <= TOL


def test_loop_two_changes_the_output_and_uses_the_gates(tiny_model):
    ids = torch.randint(0, tiny_model.config.vocab_size, (1, 30))
    with torch.no_grad():
        before = tiny_model(ids).logits
        tiny_model.model.gate_projections[0].bias.add_(3.0)
        after = tiny_model(ids).logits
        one_loop = make_model(loop_num=1)
        one_loop.load_state_dict({k: v for k, v in tiny_model.state_dict().items() if "gate_projections" not in k})
        dense = one_loop(ids).logits
    assert max_err(before, after) > 1e-3
    assert max_err(before, dense) > 1e-3


@pytest.mark.parametrize("unfused", sorted(set(LOOP_ATTENTION) - {"fused"}))
@pytest.mark.parametrize("loop_num", [2, 3])
def test_fused_and_unfused_paths_agree_forward_and_backward(loop_num, unfused):
    fused, other = make_model(loop_num=loop_num), make_model(loop_num=loop_num, attn_implementation=unfused)
    ids = torch.randint(0, fused.config.vocab_size, (2, 40))
    grads = []
    for model in (fused, other):
        logits = model(ids).logits
        F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten()).backward()
        grads.append((logits.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (fused_logits, fused_grads), (other_logits, other_grads) = grads
    assert max_err(fused_logits, other_logits) <= TOL
    for name, grad in fused_grads.items():
        assert max_err(grad, other_grads[name]) <= 1e-4 * max(1.0, grad.abs().max().item()), name


@pytest.mark.parametrize("attn_implementation", sorted(LOOP_ATTENTION))
def test_packed_documents_equal_separate_documents(attn_implementation):
    model = make_model(attn_implementation=attn_implementation)
    window = model.config.loop_window_size
    lengths = [window * 2 + 3, 1, window - 1, 17]  # longer than the window, a single token, shorter
    docs = [torch.randint(0, model.config.vocab_size, (1, n)) for n in lengths]
    cu_seqlens = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    with torch.no_grad():
        packed = model(torch.cat(docs, dim=1), cu_seqlens=cu_seqlens).logits[0]
        packed_with_bound = model(torch.cat(docs, dim=1), cu_seqlens=cu_seqlens, max_seqlen=max(lengths)).logits[0]
        separate = torch.cat([model(doc).logits[0] for doc in docs])
    assert max_err(packed, separate) <= TOL
    assert max_err(packed_with_bound, separate) <= TOL


def test_bfloat16_model_trains_and_tracks_float32():
    model = make_model()
    ids = torch.randint(0, model.config.vocab_size, (2, 30))
    with torch.no_grad():
        expected = model(ids).logits
    model.to(torch.bfloat16)
    logits = model(ids).logits
    assert logits.dtype == torch.bfloat16 and rel_err(logits, expected) <= 3e-2
    F.cross_entropy(logits.float().flatten(0, 1), ids.flatten()).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and g.dtype == torch.bfloat16 and torch.isfinite(g).all() for g in grads)


def test_position_ids_reach_rope_and_the_gate():
    """Attention scores depend on relative positions only, so shifting every position leaves the dense
    model unchanged (up to rounding) while the loop gate, computed from q after RoPE, sees the shift."""
    ids = torch.randint(0, 128, (1, 20))
    shifted_positions = torch.arange(7, 27)[None]
    with torch.no_grad():
        loop, dense = make_model(), make_model("tiny-dense")
        assert max_err(loop(ids).logits, loop(ids, position_ids=torch.arange(20)[None]).logits) == 0
        assert max_err(dense(ids).logits, dense(ids, position_ids=shifted_positions).logits) <= 1e-4
        assert max_err(loop(ids).logits, loop(ids, position_ids=shifted_positions).logits) > 1e-2


def test_torch_compile_matches_eager():
    model = make_model()
    ids = torch.randint(0, model.config.vocab_size, (2, 33))
    compiled = torch.compile(model, fullgraph=True)
    eager_logits = model(ids).logits
    compiled_logits = compiled(ids).logits
    assert rel_err(compiled_logits, eager_logits) <= TOL  # inductor reorders float sums
    compiled_logits.square().mean().backward()
    grad = model.model.gate_projections[1].weight.grad
    assert grad is not None and grad.abs().max() > 0
    packed = torch.randint(0, model.config.vocab_size, (1, 40))
    cu_seqlens = torch.tensor([0, 9, 31, 40], dtype=torch.int32)
    with torch.no_grad():
        compiled_packed = compiled(packed, cu_seqlens=cu_seqlens).logits
        assert rel_err(compiled_packed, model(packed, cu_seqlens=cu_seqlens).logits) <= TOL


@pytest.mark.parametrize("kwargs, name", [
    (dict(input_ids=torch.zeros(2, 3)), "input_ids"),
    (dict(input_ids=torch.zeros(6, dtype=torch.long)), "input_ids"),
    (dict(input_ids=torch.zeros(2, 6, dtype=torch.long), cu_seqlens=torch.tensor([0, 6], dtype=torch.int32)),
     "input_ids"),
    (dict(input_ids=torch.zeros(1, 6, dtype=torch.long), cu_seqlens=torch.tensor([0, 6])), "cu_seqlens"),
    (dict(input_ids=torch.zeros(1, 6, dtype=torch.long), position_ids=torch.arange(5)[None]), "position_ids"),
])
def test_bad_inputs_raise_naming_the_argument(tiny_model, kwargs, name):
    with pytest.raises(ValueError, match=name):
        tiny_model(**kwargs)


def test_logits_to_keep_returns_the_last_positions(tiny_model):
    ids = torch.randint(0, tiny_model.config.vocab_size, (2, 15))
    with torch.no_grad():
        full = tiny_model(ids).logits
        last = tiny_model(ids, logits_to_keep=4).logits
    assert last.shape == (2, 4, tiny_model.config.vocab_size) and max_err(last, full[:, -4:]) <= 1e-6
    with pytest.raises(ValueError, match="logits_to_keep"):
        tiny_model(ids, logits_to_keep=-1)


def test_unknown_attention_implementation():
    with pytest.raises(ValueError, match="attn_implementation"):
        LoopCoderForCausalLM(make_model().config, attn_implementation="flash")
