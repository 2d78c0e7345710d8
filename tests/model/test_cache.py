import torch

from iquest_core.model.cache import LayerCache, LoopCache


def test_global_and_window_caches_hold_what_decoding_needs():
    window, batch, kv_heads, dim = 5, 2, 3, 4
    cache = LayerCache(loop_num=3, window=window)
    chunks = [7, 1, 1, 3, 1, 1, 1, 9, 1]  # a prefill, single tokens, and chunks on both sides of the window
    all_k, all_v = [], []
    for size in chunks:
        k, v = torch.randn(batch, size, kv_heads, dim), torch.randn(batch, size, kv_heads, dim)
        all_k.append(k)
        all_v.append(v)
        keys, values = cache.append_global(k, v)
        assert torch.equal(keys, torch.cat(all_k, dim=1)) and torch.equal(values, torch.cat(all_v, dim=1))
        previous = cache.window_kv[1]
        seen_k, seen_v = cache.append_window(2, 2 * k, 2 * v)
        # the new tokens see the kept window plus themselves; afterwards the last `window` stay
        kept = 0 if previous is None else previous[0].shape[1]
        assert seen_k.shape[1] == kept + size and torch.equal(seen_k[:, kept:], 2 * k)
        assert torch.equal(cache.window_kv[1][0], 2 * torch.cat(all_k, dim=1)[:, -window:])
        assert torch.equal(cache.window_kv[1][1], 2 * torch.cat(all_v, dim=1)[:, -window:])
        assert cache.window_kv[0] is None  # loop 2's window is separate from loop 3's
    assert torch.equal(cache.global_kv_all()[0], torch.cat(all_k, dim=1))


def test_loop_cache_has_one_layer_cache_per_layer_and_counts_positions():
    cache = LoopCache(num_layers=3, loop_num=2, window=8)
    assert len(cache.layers) == 3 and all(len(layer.window_kv) == 1 for layer in cache.layers)
    cache.advance(5)
    cache.advance(1)
    assert cache.length == 6
