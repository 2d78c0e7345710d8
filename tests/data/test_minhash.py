"""MinHash signatures from the C++ kernel against datasketch's MinHash (the reference): bit-identical for
both schemes on 1,000 real files and on edge cases, whatever the thread count; argument checks."""

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from datasketch import MinHash

from iquest_core.data import dedup
from iquest_core.ops import minhash as minhash_op
from tests.data.conftest import STDLIB

SCHEMES = ["affine32", "legacy"]


def datasketch_signature(text, *, num_perm=128, seed=1, ngram=5, scheme="affine32"):
    m = MinHash(num_perm=num_perm, seed=seed, scheme=scheme)
    shingles = list(dedup.shingles(text, ngram))
    for i in range(0, len(shingles), 50_000):  # bounded memory: update_batch builds a (batch, num_perm) array
        m.update_batch(shingles[i:i + 50_000])
    return m.hashvalues


def stdlib_texts(count, rng):
    paths = sorted(STDLIB.rglob("*.py"))
    texts = []
    for path in rng.sample(paths, len(paths)):
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
        if len(texts) == count:
            return texts
    pytest.fail(f"only {len(texts)} readable stdlib files")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_bit_identical_to_datasketch_on_1000_real_files(scheme):
    seed = random.randrange(2**32)
    texts = stdlib_texts(1000, random.Random(seed))
    ours = dedup.minhash_signatures(texts, scheme=scheme)
    assert ours.dtype == MinHash(scheme=scheme).hashvalues.dtype
    mismatched = [i for i, t in enumerate(texts) if not np.array_equal(ours[i], datasketch_signature(t, scheme=scheme))]
    assert mismatched == [], f"sample seed {seed}"


EDGE_CASES = {
    "empty": "",
    "only punctuation and space": "  ()[]{}+-*/ \n\t;;",
    "one token": "token",
    "fewer tokens than ngram": "def f(x): pass",
    "exactly ngram tokens": "a b c d e",
    "non-ASCII": "déjà vu — 日本語のテキスト ünïcödé 🚀 naïve_café = 1\n" * 3,
    "repeated shingles": "x = y + z\n" * 500,
    "tokens longer than one SHA-1 block": ("a" * 70 + " ") * 8 + "b" * 200,
    "shingle of exactly 55 and 56 bytes": "a" * 51 + " b c d e " + "f" * 52 + " g h i j",
    "huge": None,
}


@pytest.fixture(scope="module")
def huge_text():
    rng = random.Random()
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz_0123456789é") for _ in range(rng.randint(1, 12)))
             for _ in range(5000)]
    return " ".join(rng.choice(words) for _ in range(250_000))  # ~1.7 MB, one document


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_edge_cases_match_datasketch(case, scheme, huge_text):
    text = huge_text if case == "huge" else EDGE_CASES[case]
    ours = dedup.minhash_signatures([text], scheme=scheme)[0]
    np.testing.assert_array_equal(ours, datasketch_signature(text, scheme=scheme))


def test_empty_text_keeps_the_maximum():
    sig = dedup.minhash_signatures(["", "  \n"], num_perm=7)
    assert (sig == 2**32 - 1).all()


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("num_perm,seed,ngram", [(1, 0, 1), (7, 3, 2), (300, 12345, 9)])
def test_other_parameters_match_datasketch(scheme, num_perm, seed, ngram):
    texts = stdlib_texts(20, random.Random(seed))
    ours = dedup.minhash_signatures(texts, num_perm=num_perm, seed=seed, ngram=ngram, scheme=scheme)
    assert ours.shape == (20, num_perm)
    for i, text in enumerate(texts):
        ref = datasketch_signature(text, num_perm=num_perm, seed=seed, ngram=ngram, scheme=scheme)
        np.testing.assert_array_equal(ours[i], ref)


def test_thread_count_does_not_change_signatures():
    texts = stdlib_texts(64, random.Random())
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = dedup.minhash_signatures(texts)
        torch.set_num_threads(2)
        two = dedup.minhash_signatures(texts)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(one, two)


def test_no_texts():
    assert dedup.minhash_signatures([]).shape == (0, 128)


def test_shingles_rules():
    assert dedup.shingles("") == set()
    assert dedup.shingles("+-*/ \n") == set()
    assert dedup.shingles("foo(bar)", ngram=5) == {b"foo bar"}
    assert dedup.shingles("a.b c\td-e", ngram=2) == {b"a b", b"b c", b"c d", b"d e"}
    assert dedup.shingles("über_x = ü", ngram=2) == {"über_x ü".encode()}


@pytest.mark.parametrize("kwargs,name", [({"num_perm": 0}, "num_perm"), ({"ngram": 0}, "ngram"),
                                         ({"scheme": "affine64"}, "scheme"), ({"num_perm": True}, "num_perm")])
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        dedup.minhash_signatures(["a b c"], **kwargs)


def test_bad_texts():
    with pytest.raises(ValueError, match="^texts: expected str, got bytes at index 1"):
        dedup.minhash_signatures(["a", b"b"])


def test_op_checks_parameters():
    a, b = np.array([3, 5], np.uint64), np.array([1, 2], np.uint64)
    with pytest.raises(ValueError, match="^b: expected 2 entries"):
        minhash_op.minhash_signatures([b"x"], a, b[:1], ngram=5, scheme="affine32")
    with pytest.raises(ValueError, match="^a: expected values in"):
        minhash_op.minhash_signatures([b"x"], np.array([2**33]), np.array([1]), ngram=5, scheme="affine32")
    with pytest.raises(ValueError, match="^documents: expected bytes"):
        minhash_op.minhash_signatures(["x"], a, b, ngram=5, scheme="legacy")


def test_kernel_checks_offsets():
    data = torch.zeros(4, dtype=torch.uint8)
    perm = torch.ones(2, dtype=torch.int64)
    with pytest.raises(ValueError, match="offsets: expected non-decreasing"):
        torch.ops.iquest.minhash_signatures(data, torch.tensor([0, 3, 2, 4]), perm, perm, 5, "affine32")
    with pytest.raises(ValueError, match="offsets: expected to start at 0"):
        torch.ops.iquest.minhash_signatures(data, torch.tensor([0, 3]), perm, perm, 5, "affine32")
    with pytest.raises(ValueError, match="scheme:"):
        torch.ops.iquest.minhash_signatures(data, torch.tensor([0, 4]), perm, perm, 5, "affine64")
    with pytest.raises(ValueError, match="bytes: expected dtype"):
        torch.ops.iquest.minhash_signatures(data.long(), torch.tensor([0, 4]), perm, perm, 5, "affine32")


def test_portable_sha1_gives_the_same_signatures(tmp_path):
    """The portable SHA-1 block function (what CPUs without SHA extensions run) inside the extension."""
    texts = stdlib_texts(30, random.Random()) + list(EDGE_CASES.values())[:-1]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    script = ("import json, sys, numpy as np; from iquest_core.data import dedup; "
              "texts = json.load(open(sys.argv[1])); "
              "np.save(sys.argv[2], np.stack([dedup.minhash_signatures(texts, scheme=s) for s in ('affine32', 'legacy')]))")
    env = {**os.environ, "IQUEST_SHA1_PORTABLE": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "texts.json"), str(tmp_path / "sig.npy")],
                   check=True, env=env)
    portable = np.load(tmp_path / "sig.npy")
    np.testing.assert_array_equal(portable[0], dedup.minhash_signatures(texts, scheme="affine32"))
    np.testing.assert_array_equal(portable[1], dedup.minhash_signatures(texts, scheme="legacy"))
