import json
import random

import pytest

from iquest_core.data import fim
from iquest_core.data.tokenizer import SPECIAL_TOKENS, load_tokenizer, train_tokenizer
from tests.data.conftest import corpus


def random_text(rng: random.Random, n: int) -> str:
    """Random str mixing ASCII, whitespace/control, CJK, emoji, a BOM and special-token strings."""
    pieces = [lambda: chr(rng.randrange(32, 127)), lambda: rng.choice("\n\r\t \x00\x0b\u2028"),
              lambda: chr(rng.randrange(0x4E00, 0x9FFF)), lambda: chr(rng.randrange(0x1F300, 0x1FAFF)),
              lambda: "\ufeff", lambda: rng.choice(SPECIAL_TOKENS), lambda: chr(rng.randrange(0x80, 0xD7FF))]
    return "".join(rng.choice(pieces)() for _ in range(n))


def test_special_tokens_have_the_first_ids(tokenizer):
    assert {t: tokenizer.special_id(t) for t in SPECIAL_TOKENS} == {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    assert tokenizer.vocab_size == 1200


def test_round_trip_of_random_text_without_special_ids(tokenizer):
    rng = random.Random()
    specials = set(range(len(SPECIAL_TOKENS)))
    for n in (0, 1, 2, 17, 300):
        for _ in range(20):
            text = random_text(rng, n)
            ids = tokenizer.encode(text)
            assert not specials & set(ids), text
            assert tokenizer.decode(ids) == text


def test_round_trip_of_the_corpus(tokenizer):
    for path, _, text in corpus():
        assert tokenizer.decode(tokenizer.encode(text)) == text, path
    assert tokenizer.encode_batch(["a<|im_end|>", "x"]) == [tokenizer.encode("a<|im_end|>"), tokenizer.encode("x")]


def test_literal_special_string_is_text(tokenizer):
    ids = tokenizer.encode("<|im_end|>")
    assert len(ids) > 1 and tokenizer.special_id("<|im_end|>") not in ids


def test_encode_fim_matches_the_formats(tokenizer):
    rng = random.Random()
    for _ in range(20):
        s = fim.FimSplit(random_text(rng, 30), random_text(rng, 1 + rng.randrange(20)), random_text(rng, 30))
        ids = tokenizer.encode_fim(s)
        assert tokenizer.decode(ids) == fim.format_file(s)
        # exactly the template's four special tokens, in order
        assert [i for i in ids if i < len(SPECIAL_TOKENS)] == [tokenizer.special_id(t) for t in (
            "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|im_end|>")]
        context = [("a/b.py", random_text(rng, 20)), ("c.py", "<|file_sep|>")]
        ids = tokenizer.encode_repo_fim("org/repo", context, "t.py", s)
        assert tokenizer.decode(ids) == fim.format_repo("org/repo", context, "t.py", s)
        assert ids.count(tokenizer.special_id("<|file_sep|>")) == 3


def test_save_and_load(tokenizer, tmp_path):
    tokenizer.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    text = corpus()[0][2] + "<|im_end|>"
    assert loaded.encode(text) == tokenizer.encode(text)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["eos_token"] == "<|endoftext|>"
    # the directory is a Hugging Face tokenizer directory too
    from transformers import PreTrainedTokenizerFast
    hf = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    assert hf.convert_tokens_to_ids("<|fim_middle|>") == tokenizer.special_id("<|fim_middle|>")
    assert hf.decode(tokenizer.encode(text)) == text


def test_published_tokenizer_without_fim_tokens(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    plain = Tokenizer(models.BPE())
    plain.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    plain.save(str(tmp_path / "tokenizer.json"))
    loaded = load_tokenizer(tmp_path)
    with pytest.raises(ValueError, match="fim_prefix"):
        loaded.encode_fim(fim.FimSplit("a", "b", "c"))


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(["x"], vocab_size=100)
    with pytest.raises(ValueError, match="tokenizer.json"):
        load_tokenizer(tmp_path)


def test_lone_surrogate_is_rejected(tokenizer):
    with pytest.raises(ValueError, match="text"):
        tokenizer.encode("a\ud800b")
