import numpy as np
import pytest
import torch

from iquest_core.data.packing import IGNORE_INDEX, pack_documents
from tests.data.conftest import STDLIB


def check_rows(rows, docs, seq_len):
    """Every document token exactly once, in order within pieces; labels/positions/cu_seqlens consistent."""
    seen = [np.zeros(len(d), dtype=np.int64) for d in docs]
    for row in rows:
        assert row.input_ids.shape == row.labels.shape == row.position_ids.shape == (seq_len,)
        assert row.cu_seqlens.dtype == np.int32 and row.cu_seqlens[0] == 0
        assert np.all(np.diff(row.cu_seqlens) > 0) and row.num_tokens <= seq_len
        assert len(row.doc_index) == len(row.doc_offset) == len(row.cu_seqlens) - 1
        for k, (d, offset) in enumerate(zip(row.doc_index, row.doc_offset)):
            a, b = row.cu_seqlens[k], row.cu_seqlens[k + 1]
            np.testing.assert_array_equal(row.input_ids[a:b], docs[d][offset:offset + b - a])
            np.testing.assert_array_equal(row.labels[a:b - 1], docs[d][offset + 1:offset + b - a])
            assert row.labels[b - 1] == IGNORE_INDEX
            np.testing.assert_array_equal(row.position_ids[a:b], np.arange(b - a))
            seen[d][offset:offset + b - a] += 1
        assert np.all(row.labels[row.num_tokens:] == IGNORE_INDEX)
        assert row.model_cu_seqlens[-1] == seq_len and row.model_cu_seqlens.dtype == np.int32
    for count in seen:
        np.testing.assert_array_equal(count, 1)


def test_random_documents_with_long_and_empty_ones():
    rng = np.random.default_rng()
    seq_len = int(rng.integers(5, 40))
    lengths = list(rng.integers(0, 3 * seq_len, size=60)) + [0, seq_len, seq_len + 1, 3 * seq_len]
    docs = [rng.integers(0, 1000, size=n) for n in lengths]
    rows = pack_documents([d.tolist() for d in docs], seq_len)
    check_rows(rows, docs, seq_len)
    assert sum(r.num_tokens for r in rows) == sum(lengths)


def test_best_fit_decreasing_on_a_known_case():
    # sizes 6,5,4,3,2 into rows of 8: 6 -> r0 (2 left), 5 -> r1 (3 left), 4 -> r2 (4 left),
    # 3 -> r1 (best fit, 0 left), 2 -> r0 (best fit, 0 left)
    docs = [[1] * n for n in (2, 3, 4, 5, 6)]
    rows = pack_documents(docs, 8)
    assert [r.doc_index.tolist() for r in rows] == [[4, 0], [3, 1], [2]]
    assert [r.num_tokens for r in rows] == [8, 8, 4]


def test_memory_mapped_shards_and_bad_documents(tmp_path):
    from iquest_core.data.shards import TokenShards, write_index, write_shard

    rng = np.random.default_rng()
    docs = [rng.integers(0, 2**32, size=n, dtype=np.uint64) for n in rng.integers(0, 300, size=30)]
    write_index(tmp_path, [write_shard(tmp_path, "shard-00000", docs)], vocab_size=2**32)
    rows = pack_documents(TokenShards(tmp_path), 128)
    check_rows(rows, [d.astype(np.int64) for d in docs], 128)
    with pytest.raises(ValueError, match="document 1"):
        pack_documents([[1, 2], [0.5, 1.5]], 8)
    with pytest.raises(ValueError, match="document 0"):
        pack_documents([[[1, 2]]], 8)


def test_deterministic():
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 50, size=n).tolist() for n in rng.integers(1, 30, size=40)]
    a, b = pack_documents(docs, 32), pack_documents(docs, 32)
    assert all(np.array_equal(x.input_ids, y.input_ids) and np.array_equal(x.cu_seqlens, y.cu_seqlens)
               for x, y in zip(a, b))


@pytest.mark.parametrize("seq_len", [0, -3, 2.5, True, "8"])
def test_bad_seq_len(seq_len):
    with pytest.raises(ValueError, match="seq_len"):
        pack_documents([[1, 2]], seq_len)


def test_stdlib_token_lengths_fill_95_percent(tokenizer):
    # every other top-level module of the standard library (84 files, 2.3 MB); the whole library
    # (13k files, 75M tokens) packs at 99.99% (README)
    texts = [path.read_text(encoding="utf-8") for path in sorted(STDLIB.glob("*.py"))[::2]]
    assert len(texts) >= 80, STDLIB
    docs = tokenizer.encode_batch(texts)
    rows = pack_documents(docs, 4096)
    real = sum(r.num_tokens for r in rows)
    assert real == sum(map(len, docs))
    assert real / (len(rows) * 4096) >= 0.95


def test_packed_loss_equals_weighted_mean_of_documents_alone():
    from iquest_core.model import LoopCoderConfig, LoopCoderForCausalLM
    from iquest_core.model.loss import next_token_loss

    torch.manual_seed(0)
    # large initial weights: at the default scale the loss barely depends on context, and a wrong mask or
    # wrong positions would hide under the tolerance
    model = LoopCoderForCausalLM(LoopCoderConfig.preset("tiny", initializer_range=0.2)).eval()
    rng = np.random.default_rng()
    seq_len = 64
    docs = [rng.integers(0, 128, size=n) for n in (50, 37, 20, 13, 9, 2, 1, 70)]
    rows = pack_documents(docs, seq_len)
    with torch.no_grad():
        for row in rows:
            packed = next_token_loss(model, torch.from_numpy(row.input_ids)[None], torch.from_numpy(row.labels)[None],
                                     position_ids=torch.from_numpy(row.position_ids)[None],
                                     cu_seqlens=torch.from_numpy(row.model_cu_seqlens))
            total, count = 0.0, 0
            for k, (d, offset) in enumerate(zip(row.doc_index, row.doc_offset)):
                n = int(row.cu_seqlens[k + 1] - row.cu_seqlens[k])
                if n < 2:
                    continue
                piece = torch.from_numpy(docs[d][offset:offset + n])[None]
                labels = torch.cat([piece[:, 1:], torch.tensor([[IGNORE_INDEX]])], dim=1)
                total += float(next_token_loss(model, piece, labels)) * (n - 1)
                count += n - 1
            assert float(packed) == pytest.approx(total / count, abs=1e-5)
            if len(row.doc_index) > 1:  # the same row without document boundaries is another loss
                unmasked = next_token_loss(model, torch.from_numpy(row.input_ids)[None],
                                           torch.from_numpy(row.labels)[None])
                assert abs(float(unmasked) - total / count) > 1e-3
