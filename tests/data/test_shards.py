import json

import numpy as np
import pytest

from iquest_core.data.shards import TokenShards, write_index, write_shard


def make_shards(directory, rng):
    docs = [[rng.integers(0, 2**32, size=int(n), dtype=np.uint64).tolist() for n in rng.integers(0, 50, size=k)]
            for k in (5, 0, 17)]
    entries = [write_shard(directory, f"shard-{i:05d}", shard) for i, shard in enumerate(docs)]
    write_index(directory, entries, vocab_size=2**32)
    return [d for shard in docs for d in shard]


def test_round_trip_memory_mapped(tmp_path):
    docs = make_shards(tmp_path, np.random.default_rng())
    shards = TokenShards(tmp_path)
    assert len(shards) == len(docs) and shards.num_tokens == sum(map(len, docs))
    assert [d.tolist() for d in shards] == docs
    assert [shards[i].tolist() for i in range(-len(docs), len(docs))] == docs + docs
    assert shards.lengths().tolist() == [len(d) for d in docs]
    assert all(d.dtype == np.uint32 for d in shards)
    assert isinstance(np.load(tmp_path / "shard-00000.tokens.npy", mmap_mode="r"), np.memmap)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))
    with pytest.raises(IndexError):
        shards[len(docs)]


def test_incomplete_or_inconsistent_directory(tmp_path):
    with pytest.raises(ValueError, match="index.json"):
        TokenShards(tmp_path)
    make_shards(tmp_path, np.random.default_rng())
    index = json.loads((tmp_path / "index.json").read_text())
    index["shards"][0]["num_documents"] += 1
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="shard-00000"):
        TokenShards(tmp_path)


def test_ids_must_fit_uint32(tmp_path):
    with pytest.raises(ValueError, match="uint32"):
        write_shard(tmp_path, "s", [[1, 2**32]])
    with pytest.raises(ValueError, match="uint32"):
        write_shard(tmp_path, "s", [[-1]])
    assert not list(tmp_path.iterdir())


def test_a_failed_write_leaves_no_file(tmp_path):
    class Unserializable:
        pass

    with pytest.raises(TypeError):
        write_index(tmp_path, [{"name": "s", "num_documents": 1, "num_tokens": 1, "x": Unserializable()}],
                    vocab_size=8)
    assert not list(tmp_path.iterdir())
