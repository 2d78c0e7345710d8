import pytest
import torch

from tests.helpers import max_err
from tests.model.conftest import make_model

TOL = 1e-5


def _full_logits(model, ids):
    """Logits at every position of ids, from one full forward (causal: equal to recomputing per step)."""
    with torch.no_grad():
        return model(ids).logits.float()


@pytest.mark.parametrize("preset, loop_num, window", [("tiny", 2, 8), ("tiny", 2, 64), ("tiny-dense", 1, 8),
                                                      ("tiny", 3, 8)])
def test_incremental_decoding_equals_full_recomputation(preset, loop_num, window):
    model = make_model(preset, seed=3, loop_num=loop_num, loop_window_size=window)
    window = model.config.loop_window_size
    prompt = torch.randint(0, model.config.vocab_size, (2, 3 * window + 5))  # longer than the window
    ids, step_logits = model.generate(prompt, 64, return_logits=True)
    assert ids.shape == (2, prompt.shape[1] + 64) and torch.equal(ids[:, :prompt.shape[1]], prompt)
    full = _full_logits(model, ids[:, :-1])[:, prompt.shape[1] - 1:]
    assert max_err(step_logits, full) <= TOL
    assert torch.equal(ids[:, prompt.shape[1]:], full.argmax(-1))  # greedy picks the same tokens


@pytest.mark.parametrize("prompt_len_vs_window", [-1, 0, 1, 9])
def test_window_cache_prefill_holds_the_last_window_keys(prompt_len_vs_window):
    """After prefill the loop-2 cache must hold the K/V of the last W prompt positions (the original
    remote code fills it wrongly), so that the first decoded tokens already see the right window."""
    model = make_model(seed=4)
    window = model.config.loop_window_size
    prompt_len = window + prompt_len_vs_window
    prompt = torch.randint(0, model.config.vocab_size, (1, prompt_len))
    cache = model.new_cache()
    with torch.no_grad():
        model(prompt, cache=cache)
    layer = cache.layers[1]
    assert layer.global_kv_all()[0].shape[1] == prompt_len
    assert layer.window_kv[0][0].shape[1] == min(prompt_len, window)
    ids, step_logits = model.generate(prompt, 3, return_logits=True)
    assert max_err(step_logits, _full_logits(model, ids[:, :-1])[:, prompt_len - 1:]) <= TOL


def test_cached_window_keys_are_the_loop_two_keys_of_the_last_positions():
    model = make_model(seed=5)
    window = model.config.loop_window_size
    prompt = torch.randint(0, model.config.vocab_size, (1, 2 * window + 3))
    k_proj_outputs = []
    hook = model.model.layers[0].self_attn.k_proj.register_forward_hook(lambda m, i, out: k_proj_outputs.append(out))
    cache = model.new_cache()
    with torch.no_grad():
        model(prompt, cache=cache)
    hook.remove()
    loop1_keys, loop2_keys = k_proj_outputs  # pre-RoPE keys of layer 0 in loops 1 and 2
    cached_keys = cache.layers[0].window_kv[0][0]
    assert cached_keys.shape[1] == window
    # RoPE does not change norms: compare per-head norms of the cached (post-RoPE) and projected keys.
    heads, dim = model.config.num_key_value_heads, model.config.head_dim
    expected = loop2_keys[:, -window:].view(1, window, heads, dim).norm(dim=-1)
    assert max_err(cached_keys.norm(dim=-1), expected) <= 1e-5
    assert max_err(cached_keys.norm(dim=-1), loop1_keys[:, -window:].view(1, window, heads, dim).norm(dim=-1)) > 1e-3


def test_eos_stops_and_pads_finished_sequences():
    model = make_model(seed=6)
    prompt = torch.randint(0, model.config.vocab_size, (2, 10))
    free = model.generate(prompt, 12)
    eos = int(free[0, 13])  # the 4th token row 0 produces
    ids = model.generate(prompt, 12, eos_token_id=eos)
    new = ids[:, 10:]
    for row in range(2):
        hits = (new[row] == eos).nonzero()
        if len(hits):
            first = hits[0, 0]
            assert (new[row, first:] == eos).all()
            assert torch.equal(new[row, :first], free[row, 10:10 + first])
    if new.shape[1] < 12:  # stopping early is only allowed once every row has finished
        assert (new == eos).any(dim=1).all()
    assert (new[0] == eos).any() and new[0, :4].tolist() == free[0, 10:14].tolist()


def test_sampling_is_seeded_and_respects_top_k():
    model = make_model(seed=7)
    prompt = torch.randint(0, model.config.vocab_size, (3, 6))

    def sample(seed, **kwargs):
        return model.generate(prompt, 10, do_sample=True, generator=torch.Generator().manual_seed(seed), **kwargs)

    assert torch.equal(sample(1, temperature=0.8, top_p=0.9), sample(1, temperature=0.8, top_p=0.9))
    assert not torch.equal(sample(1, temperature=5.0), sample(2, temperature=5.0))
    assert torch.equal(sample(3, top_k=1), model.generate(prompt, 10))  # top-1 sampling is greedy
    assert torch.equal(sample(4, top_p=1e-6), model.generate(prompt, 10))  # so is a vanishing nucleus


def test_stop_ends_rows_like_eos_and_decoding_once_all_have_ended():
    model = make_model(seed=7)
    prompt = torch.randint(0, model.config.vocab_size, (3, 6))
    free = model.generate(prompt, 10, eos_token_id=[])
    seen = []

    def stop_rows_after(lengths):
        def stop(ids):
            seen.append(ids.shape[1])
            return torch.tensor([ids.shape[1] - 6 >= n for n in lengths])
        return stop

    eos = next(t for t in range(model.config.vocab_size) if t not in free[:, 6:])  # no early natural eos
    ids = model.generate(prompt, 10, eos_token_id=eos, stop=stop_rows_after([2, 4, 3]))
    assert ids.shape == (3, 10) and seen == [7, 8, 9, 10]  # the last row ends at 4 new tokens
    for row, n in enumerate([2, 4, 3]):
        assert torch.equal(ids[row, 6:6 + n], free[row, 6:6 + n])
        assert (ids[row, 6 + n:] == eos).all()
    assert torch.equal(model.generate(prompt, 10, eos_token_id=[], stop=lambda ids: torch.zeros(3, dtype=torch.bool)),
                       free)
    with pytest.raises(ValueError, match=r"^stop: expected it to return a bool tensor of shape \(3,\)"):
        model.generate(prompt, 2, stop=lambda ids: torch.zeros(3))
    with pytest.raises(ValueError, match="^stop: expected a callable"):
        model.generate(prompt, 2, stop=3)


@pytest.mark.parametrize("kwargs, name", [
    (dict(max_new_tokens=-1), "max_new_tokens"),
    (dict(max_new_tokens=5000), "max_new_tokens"),
    (dict(max_new_tokens=2, do_sample=True, temperature=0.0), "temperature"),
    (dict(max_new_tokens=2, top_p=0.0), "top_p"),
    (dict(max_new_tokens=2, top_k=-3), "top_k"),
    (dict(max_new_tokens=2, input_ids=torch.zeros(1, 0, dtype=torch.long)), "input_ids"),
])
def test_bad_generate_arguments_raise(tiny_model, kwargs, name):
    kwargs = {"input_ids": torch.zeros(1, 4, dtype=torch.long), **kwargs}
    with pytest.raises(ValueError, match=name):
        tiny_model.generate(**kwargs)
