"""Long content is encoded in line pieces: the same ids as the whole text, with bounded memory."""

import random
import subprocess
import sys

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from iquest_core.data.tokenizer import CodeTokenizer, cuts_at_lines, line_pieces, load_tokenizer
from tests.data.conftest import corpus

FRAGMENTS = ["x", "ab", "Z9", "12", "'s", "'", "(", ");", "#", "\n", "\n\n", " ", "  ", "\t", "\r\n", "\r", "\u00a0",
             "\u2028", "\u3000", "\x0b", "é", "名", "🙂", "\ufeff", "<|im_end|>", " 'll", "\n    ", "\n\t"]


def pair(tokenizer, tmp_path) -> tuple[CodeTokenizer, CodeTokenizer]:
    """(whole, pieced): the same tokenizer, one never cutting, one cutting after 1 character."""
    tokenizer.save(tmp_path)
    whole, pieced = load_tokenizer(tmp_path), load_tokenizer(tmp_path)
    whole.piece_chars, pieced.piece_chars = 10**12, 1
    return whole, pieced


def test_pieces_give_the_ids_of_the_whole_text(tokenizer, tmp_path):
    whole, pieced = pair(tokenizer, tmp_path)
    rng = random.Random(0)
    cut = 0
    for n in (2, 5, 40, 300) * 50:
        text = "".join(rng.choice(FRAGMENTS) for _ in range(n))
        size = rng.choice((1, 3, 10))
        pieced.piece_chars = size
        cut += len(list(line_pieces(text, size))) > 1
        assert pieced.encode(text) == whole.encode(text), repr(text)
    assert cut > 100  # most texts were really cut
    pieced.piece_chars = 64
    for path, _, text in corpus():
        assert len(list(line_pieces(text, 64))) > 1
        assert pieced.encode(text) == whole.encode(text), path


def test_a_cut_the_rule_forbids_changes_the_ids(tokenizer):
    # the control: cutting inside a whitespace run (after "\n", before spaces) is not neutral
    text = "x = 1\n\n    y = 2\n"
    assert tokenizer.encode(text[:6]) + tokenizer.encode(text[6:]) != tokenizer.encode(text)
    assert [len(p) for p in line_pieces(text, 1)] == [5, 11, 1]  # allowed: before "\n" after "1" and "2"


def test_line_pieces_cover_the_text_and_cut_after_printable_ascii():
    rng = random.Random(1)
    for _ in range(300):
        text = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randrange(60)))
        size = rng.randrange(1, 12)
        pieces = list(line_pieces(text, size))
        assert "".join(pieces) == text
        assert all(len(p) >= size for p in pieces[:-1])
        assert all(p.startswith("\n") and "!" <= q[-1] <= "~" for q, p in zip(pieces, pieces[1:]))
    assert list(line_pieces("a" * 100, 10)) == ["a" * 100]  # no line end: whole


def test_other_tokenizers_are_never_cut():
    shapes = {"prefix space": pre_tokenizers.ByteLevel(add_prefix_space=True),
              "no regex": pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
              "whitespace": pre_tokenizers.Whitespace()}
    for name, pre in shapes.items():
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre
        assert not cuts_at_lines(tok), name
    ours = Tokenizer(models.BPE())
    ours.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    assert cuts_at_lines(ours)
    ours.add_tokens(["    "])  # a plain added token could span a cut
    assert not cuts_at_lines(ours)


PEAK = """
import random, sys
from iquest_core.data.steps.tokenize import encode_document
from iquest_core.data.tokenizer import train_tokenizer

rng = random.Random(0)
words = ["".join(rng.choice("abcdefghij_") for _ in range(rng.randrange(2, 12))) for _ in range(5000)]
lines = [f"{rng.choice(words)} = {rng.choice(words)}({rng.choice(words)}, {rng.randrange(10**6)})" for _ in range(60000)]
content = "\\n".join(lines) + "\\n"  # one 2 MB document
tok = train_tokenizer([content[:50000]], vocab_size=600)
tok.piece_chars = int(sys.argv[1])
with open("/proc/self/clear_refs", "w") as reset:
    reset.write("5")  # VmHWM := VmRSS
def kib(key):
    return int(next(line for line in open("/proc/self/status") if line.startswith(key)).split()[1])
before = kib("VmRSS")
ids = encode_document(tok, "big.py", content)
print(len(content), (kib("VmHWM") - before) / 1024)
"""


def test_encoding_a_large_document_stays_bounded(tmp_path):
    """The peak of tokenizing one 2 MB document, in a fresh process: whole, `tokenizers` takes about
    170 bytes per character (over 300 MB); in 64 KiB pieces it stays under 80 MB (ids included)."""
    def peak_mb(piece_chars: int) -> float:
        out = subprocess.run([sys.executable, "-c", PEAK, str(piece_chars)], capture_output=True, text=True, check=True)
        chars, peak = out.stdout.split()
        assert int(chars) > 2_000_000
        return float(peak)

    assert peak_mb(1 << 16) < 80
    assert peak_mb(10**12) > 150  # the control: the same document encoded whole


@pytest.mark.parametrize("piece_chars", [1, 1 << 16])
def test_token_ids_of_a_large_file_are_unchanged(tokenizer, tmp_path, piece_chars):
    whole, pieced = pair(tokenizer, tmp_path)
    pieced.piece_chars = piece_chars
    text = "".join(text for _, _, text in corpus()) * 3
    assert len(text) > piece_chars
    assert pieced.encode(text) == whole.encode(text)
