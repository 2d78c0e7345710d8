"""tokenize: token ids for the trainer, and the token-shard writer of the pipeline's "tokens" output format.

    [[steps]]
    name = "tokenize"
    tokenizer = "tokenizer/"      # a directory with tokenizer.json (iquest_core.data.tokenizer)

Each document gets "tokens" (uint32 numpy array): its content encoded as content followed by
<|endoftext|>, or, for a FIM template (a "special" span list), part by part with the spans as their
special ids, ending as the template does (<|im_end|>). Outcomes: "tokens" (their number),
"fim_templates" (documents with special spans). The step must be
the pipeline's last and its output_format "tokens": each output shard is then a token shard
(iquest_core.data.shards: shard-N.tokens.npy + shard-N.offsets.npy, streamed to disk) and the driver
writes index.json last, so the output directory is a `TokenShards` directory once the job is complete.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from iquest_core.atomic_io import atomic_path
from iquest_core.data.steps import Doc, ShardContext, register
from iquest_core.data.tokenizer import EOS_TOKEN, CodeTokenizer, load_tokenizer

TOKENS_SUFFIX = ".tokens"


@functools.lru_cache(maxsize=2)
def cached_tokenizer(directory: str) -> CodeTokenizer:
    return load_tokenizer(directory)


def encode_document(tok: CodeTokenizer, path: str, content: str, special: Iterable[Iterable[int]] = ()) -> list[int]:
    """Token ids of one document (see the module docstring); ValueError for a span out of order or range."""
    spans = [tuple(span) for span in special]
    if not spans:
        return tok.encode(content) + [tok.special_id(EOS_TOKEN)]
    parts, at = [], 0
    for start, end in spans:
        if not at <= start < end <= len(content):
            raise ValueError(f"special: span {(start, end)} of {path} is out of order or out of range")
        parts += [(False, content[at:start]), (True, content[start:end])]
        at = end
    return tok.encode_parts(parts + [(False, content[at:])])


@register
@dataclass
class Tokenize:
    name: ClassVar[str] = "tokenize"
    tokenizer: str = ""

    def __post_init__(self) -> None:
        if not (Path(self.tokenizer) / "tokenizer.json").is_file():
            raise ValueError(f"tokenizer: expected a directory with tokenizer.json, got {self.tokenizer!r}")

    def run(self, docs: Iterator[Doc], ctx: ShardContext) -> Iterator[Doc]:
        tok = cached_tokenizer(self.tokenizer)
        for doc in docs:
            tokens = np.asarray(encode_document(tok, doc["path"], doc["content"], doc.get("special", ())), np.uint32)
            ctx.count("tokens", len(tokens))
            ctx.count("fim_templates", bool(doc.get("special")))
            yield {**doc, "tokens": tokens}


def write_token_shard(path: Path, docs: Iterable[Doc]) -> None:
    """PATH = DIR/NAME.tokens: DIR/NAME.tokens.npy and DIR/NAME.offsets.npy of the documents' "tokens",
    streamed (tokens go to a raw file as they come, then behind the .npy header), each renamed into place."""
    directory, name = path.parent, path.name.removesuffix(TOKENS_SUFFIX)
    offsets = [0]
    raw = directory / f".{name}.raw.tmp"  # a killed writer's is removed when the job resumes
    try:
        with open(raw, "wb") as sink:
            for doc in docs:
                tokens = doc.get("tokens")
                if not isinstance(tokens, np.ndarray):
                    raise ValueError(f"output_format: 'tokens' needs the tokenize step last; {doc['path']} has no tokens")
                sink.write(tokens.astype(np.uint32, copy=False).tobytes())
                offsets.append(offsets[-1] + len(tokens))
        with atomic_path(directory / f"{name}.tokens.npy") as tmp, open(tmp, "wb") as handle, open(raw, "rb") as source:
            np.lib.format.write_array_header_1_0(handle, {"descr": np.dtype(np.uint32).str, "fortran_order": False,
                                                          "shape": (offsets[-1],)})
            shutil.copyfileobj(source, handle, 1 << 20)
    finally:
        raw.unlink(missing_ok=True)
    with atomic_path(directory / f"{name}.offsets.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.asarray(offsets, dtype=np.int64))
