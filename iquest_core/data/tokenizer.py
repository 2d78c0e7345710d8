"""Byte-level BPE tokenizer (Hugging Face `tokenizers`) with the special tokens of the FIM templates.

    tok = train_tokenizer(texts, vocab_size=4096)     # SPECIAL_TOKENS take ids 0..len(SPECIAL_TOKENS)-1
    tok.save(directory)                               # tokenizer.json (+ tokenizer_config.json)
    tok = load_tokenizer(directory)                   # ours, or a published directory with tokenizer.json

`encode(text)` treats its input as content: a literal "<|im_end|>" in a source file becomes ordinary
tokens, never a special id, and `decode(encode(t)) == t` for every str that is valid Unicode (byte-level
BPE without a normalizer; a published tokenizer with a normalizer, e.g. NFC, round-trips only what it
leaves unchanged). Special ids come only from `encode_parts`, which the FIM encoders use:
`decode(encode_fim(split)) == fim.format_file(split)` and likewise for `encode_repo_fim`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

from iquest_core.data import fim

SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
    "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)
EOS_TOKEN = "<|endoftext|>"
PIECE_CHARS = 1 << 16  # longer content is encoded piece by piece where that gives the same ids (`encode`)


def line_pieces(text: str, size: int) -> Iterator[str]:
    """`text` as consecutive pieces of at least `size` characters (the last may be shorter), each cut just
    before a "\\n" that follows a printable ASCII character; a rest without such a cut stays whole.

    Under the byte-level pre-tokenizer's regex (GPT-2's, no prefix space) no pre-token spans such a cut:
    the pre-token of the printable character ends at it (letters, digits and punctuation never absorb
    whitespace) and the next pre-token starts at the "\\n" whatever precedes it. So the pieces' ids,
    joined, equal the whole text's."""
    start = 0
    while len(text) - start > size:
        cut = text.find("\n", start + size)
        while cut != -1 and not "!" <= text[cut - 1] <= "~":
            cut = text.find("\n", cut + 1)
        if cut == -1:
            break
        yield text[start:cut]
        start = cut
    yield text[start:]


def cuts_at_lines(tokenizer: Tokenizer) -> bool:
    """Whether `line_pieces` keeps this tokenizer's ids: no normalizer, the byte-level pre-tokenizer with
    its regex and no prefix space, and only special added tokens (which content never matches)."""
    config = json.loads(tokenizer.to_str())
    pre = config.get("pre_tokenizer") or {}
    return (config.get("normalizer") is None and pre.get("type") == "ByteLevel" and pre.get("use_regex") is True
            and pre.get("add_prefix_space") is False and all(t.get("special") for t in config.get("added_tokens", [])))


class CodeTokenizer:
    """A `tokenizers.Tokenizer` used as a content encoder plus the special ids of the templates.

    `piece_chars` bounds the text `tokenizers` sees at once: its encoding holds about 170 bytes per
    character, so a 900 KB file alone took 150 MB. Longer content is encoded in `line_pieces` when
    `cuts_at_lines` (our tokenizers), with the same ids; other tokenizers encode it whole."""

    def __init__(self, tokenizer: Tokenizer, piece_chars: int = PIECE_CHARS) -> None:
        self._tok = tokenizer
        self._tok.encode_special_tokens = True  # special-token strings inside content are text
        self._special = {t.content: i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}
        self._cuts = cuts_at_lines(tokenizer)
        self.piece_chars = piece_chars

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def special_id(self, token: str) -> int:
        """Id of a special token such as "<|im_end|>"; ValueError if the vocabulary lacks it."""
        if token not in self._special:
            raise ValueError(f"token: {token!r} is not a special token of this tokenizer "
                             f"(has {sorted(self._special)})")
        return self._special[token]

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` as content (no special ids, nothing added)."""
        if not isinstance(text, str):
            raise ValueError(f"text: expected a str, got {type(text).__name__}")
        if not self._cuts or len(text) <= self.piece_chars:
            return self._encode_whole(text)
        ids: list[int] = []
        for piece in line_pieces(text, self.piece_chars):
            ids += self._encode_whole(piece)
        return ids

    def _encode_whole(self, text: str) -> list[int]:
        try:
            return self._tok.encode_batch_fast([text], add_special_tokens=False)[0].ids  # no offsets: 1.4x faster
        except TypeError:  # a str `tokenizers` cannot take: lone surrogates
            raise ValueError("text: expected valid Unicode (no lone surrogates)") from None

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """[encode(t) for t in texts], in parallel inside `tokenizers`."""
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of `ids`, special tokens written out."""
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def encode_parts(self, parts: Iterable[tuple[bool, str]]) -> list[int]:
        """Ids of a template given as (is_special, string) parts (see `fim.file_parts`): special parts
        become their single id, the others are encoded as content."""
        ids: list[int] = []
        for special, piece in parts:
            if special:
                ids.append(self.special_id(piece))
            elif piece:
                ids.extend(self.encode(piece))
        return ids

    def encode_fim(self, split: fim.FimSplit) -> list[int]:
        """Ids of `fim.format_file(split)` with the template's special ids."""
        return self.encode_parts(fim.file_parts(split))

    def encode_repo_fim(self, repo: str, context: Sequence[tuple[str, str]], target_path: str,
                        split: fim.FimSplit) -> list[int]:
        """Ids of `fim.format_repo(repo, context, target_path, split)` with the template's special ids."""
        return self.encode_parts(fim.repo_parts(repo, context, target_path, split))

    def save(self, directory: str | Path) -> None:
        """Write tokenizer.json and a tokenizer_config.json that `transformers` understands."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._tok.save(str(directory / "tokenizer.json"))
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": EOS_TOKEN,
                  "pad_token": "<|fim_pad|>" if "<|fim_pad|>" in self._special else None,
                  "additional_special_tokens": sorted(self._special, key=self._special.get),
                  "clean_up_tokenization_spaces": False}
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def train_tokenizer(texts: Iterable[str], *, vocab_size: int, min_frequency: int = 2) -> CodeTokenizer:
    """Train a byte-level BPE on `texts`; SPECIAL_TOKENS get ids 0..8, the 256 byte tokens follow, so
    vocab_size must be at least len(SPECIAL_TOKENS) + 256."""
    floor = len(SPECIAL_TOKENS) + 256
    if vocab_size < floor:
        raise ValueError(f"vocab_size: expected >= {floor} (special tokens + 256 bytes), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[AddedToken(t, special=True, normalized=False)
                                                  for t in SPECIAL_TOKENS])
    tok.train_from_iterator(texts, trainer)
    return CodeTokenizer(tok)


def load_tokenizer(directory: str | Path) -> CodeTokenizer:
    """Load directory/tokenizer.json (ours or a published model's)."""
    path = Path(directory) / "tokenizer.json"
    if not path.is_file():
        raise ValueError(f"directory: expected a tokenizer directory with tokenizer.json, got {directory}")
    return CodeTokenizer(Tokenizer.from_file(str(path)))
