"""MinHash signatures of real source files on one core: the C++ kernel (dedup.minhash_signatures, one
torch thread) against what a user would otherwise run, datasketch's MinHash + update_batch over the same
shingles (the shingling included on both sides). 400 Python standard-library files, 128 permutations,
both schemes; the summary marks the kernel as the subject. extra_info holds documents/s and MB/s."""

import numpy as np
import pytest
import torch
from datasketch import MinHash

from iquest_core.data import dedup
from tests.data.conftest import STDLIB

NUM_FILES = 400


@pytest.fixture(scope="module")
def corpus():
    texts = []
    for path in sorted(STDLIB.rglob("*.py")):
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            continue
        if len(texts) == NUM_FILES:
            break
    return texts


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def datasketch_signatures(texts, scheme):
    out = []
    for text in texts:
        m = MinHash(num_perm=128, seed=1, scheme=scheme)
        m.update_batch(list(dedup.shingles(text)))
        out.append(m.hashvalues)
    return np.stack(out)


IMPLS = {"iquest C++": lambda texts, scheme: dedup.minhash_signatures(texts, scheme=scheme),
         "datasketch": datasketch_signatures}


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
@pytest.mark.parametrize("impl", list(IMPLS))
def test_minhash_signatures(benchmark, record_median, corpus, one_thread, impl, scheme):
    fn = IMPLS[impl]
    group = f"minhash {NUM_FILES} stdlib files {scheme}"
    benchmark.group = group
    result = benchmark.pedantic(fn, args=(corpus, scheme), rounds=3 if impl == "datasketch" else 10, iterations=1)
    np.testing.assert_array_equal(result, dedup.minhash_signatures(corpus[:NUM_FILES], scheme=scheme))
    median = benchmark.stats.stats.median
    megabytes = sum(len(t.encode("utf-8")) for t in corpus) / 1e6
    benchmark.extra_info.update(documents_per_s=len(corpus) / median, mb_per_s=megabytes / median)
    record_median(group, impl, benchmark, subject=impl == "iquest C++")
