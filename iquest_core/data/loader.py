"""The trainer's data loader: sources -> a weighted document mixture -> packed rows -> each rank's slice.

Sources (recipe ``data.sources``): token shards written by `iquest data tokenize` (read memory-mapped),
JSONL records ({"text": ...} or {"messages": [...]}, optional "difficulty"; tokenized when opened), or
this package's own source files ("package"). Text documents end with <|endoftext|>; chat records are
rendered by `data.chat` and, with ``loss_on = "assistant"``, carry a mask so that only assistant tokens
are targets.

Every step draws documents until they fill the step's rows: a source is picked with probability
proportional to its weight, then that source's next document in a seeded permutation (a new one each
epoch). Documents are cut into pieces of at most seq_len and packed best-fit-decreasing
(`iquest_core.data.packing`); pieces that do not fit the step's rows wait for the next step (dropped when
a curriculum stage ends). Labels are the next token of the same document (also across a piece cut),
-100 where there is none or the mask excludes it.

The global batch at step s is a function of the recipe and the seed only: every rank builds all of it
and takes its contiguous share of rows (`rank_rows`), so the same step trains on the same tokens for any
dp degree. `state_dict()` (JSON-able: cursors, the mixture generator, waiting pieces) restores the
stream exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iquest_core.data.chat import render_chat
from iquest_core.data.curriculum import active_stage, stage_of
from iquest_core.data.packing import IGNORE_INDEX, pack_documents
from iquest_core.data.shards import INDEX, TokenShards
from iquest_core.data.tokenizer import EOS_TOKEN
from iquest_core.jsonl import read_jsonl


@dataclass
class Document:
    ids: np.ndarray                # int64 (n,)
    mask: np.ndarray | None = None  # bool (n,): which tokens are targets; None: all
    difficulty: float | None = None


@dataclass
class Row:
    """One packed row of seq_len tokens; the first num_tokens are real, the rest padding."""

    input_ids: torch.Tensor     # (seq_len,) int64
    labels: torch.Tensor        # (seq_len,) int64, IGNORE_INDEX where no target
    position_ids: torch.Tensor  # (seq_len,) int64, restarting per piece
    cu_seqlens: torch.Tensor    # (pieces + 1,) int32, ends at num_tokens
    documents: list[tuple[int, int]]  # (source, document) of each piece

    @property
    def num_tokens(self) -> int:
        return int(self.cu_seqlens[-1])


SOURCE_KINDS = ("shards", "jsonl", "package")


def source_kind(path: str, kind: str = "auto") -> str:
    """The kind of a source spec ("shards", "jsonl" or "package")."""
    if kind != "auto":
        return kind
    if path == "package":
        return "package"
    if (Path(path) / INDEX).is_file():
        return "shards"
    return "jsonl"


def package_texts() -> list[str]:
    """The text of every .py file of the iquest_core package, in path order."""
    root = Path(__file__).resolve().parent.parent
    return [p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py"))]


def read_records(path: Path, where: str) -> list[dict[str, Any]]:
    """The records of a JSONL text or chat source: each a dict with 'text' or 'messages'."""
    records = []
    for n, record in read_jsonl(path, where):
        if not isinstance(record, dict) or not ("text" in record or "messages" in record):
            raise ValueError(f"{where}: line {n} of {path}: expected a record with 'text' or 'messages'")
        records.append(record)
    if not records:
        raise ValueError(f"{where}: {path} holds no records")
    return records


def source_texts(spec: dict[str, Any], template: str, where: str) -> list[str]:
    """The raw texts of a text source (to train a tokenizer on); [] for token shards."""
    kind = source_kind(spec["path"], spec.get("kind", "auto"))
    if kind == "package":
        return package_texts()
    if kind == "shards":
        return []
    from iquest_core.data.chat import chat_text
    return [r["text"] if "text" in r else chat_text(r["messages"], template)
            for r in read_records(_existing(spec["path"], where), where)]


def _existing(path: str, where: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{where}: no such file or directory: {path}")
    return p


class ShardSource:
    """Documents of a token shard directory, read on demand."""

    def __init__(self, path: Path, vocab_size: int, where: str) -> None:
        self.shards = TokenShards(path)
        if self.shards.vocab_size > vocab_size:
            raise ValueError(f"{where}: shards of vocabulary {self.shards.vocab_size} exceed model.vocab_size="
                             f"{vocab_size}")
        self.difficulties: list[float | None] = [None] * len(self.shards)

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, i: int) -> Document:
        return Document(np.asarray(self.shards[i], dtype=np.int64))


class TextSource:
    """Documents of text / chat records, tokenized when opened."""

    def __init__(self, records: list[dict[str, Any]], tokenizer, template: str, loss_on: str) -> None:
        eos = tokenizer.special_id(EOS_TOKEN)
        self.documents = []
        for record in records:
            if "messages" in record:
                ids, mask = render_chat(record["messages"], tokenizer, template)
                doc = Document(np.array(ids, dtype=np.int64),
                               np.array(mask, dtype=bool) if loss_on == "assistant" else None)
            else:
                doc = Document(np.array([*tokenizer.encode(record["text"]), eos], dtype=np.int64))
            doc.difficulty = record.get("difficulty")
            self.documents.append(doc)
        self.difficulties = [d.difficulty for d in self.documents]

    def __len__(self) -> int:
        return len(self.documents)

    def __getitem__(self, i: int) -> Document:
        return self.documents[i]


def open_sources(specs: list[dict[str, Any]], tokenizer, vocab_size: int, *, template: str = "instruct",
                 loss_on: str = "all", key: str = "data.sources") -> list[ShardSource | TextSource]:
    """The sources of a recipe's source tables ({path, kind}), text rendered with `template` and `loss_on`;
    ValueError naming KEY[i] when one is missing or bad."""
    sources = []
    for i, spec in enumerate(specs):
        where = f"{key}[{i}].path"
        kind = source_kind(spec["path"], spec.get("kind", "auto"))
        if kind == "shards":
            source = ShardSource(_existing(spec["path"], where), vocab_size, where)
        else:
            records = ([{"text": t} for t in package_texts()] if kind == "package"
                       else read_records(_existing(spec["path"], where), where))
            if tokenizer is None:
                raise ValueError(f"data.tokenizer: source {spec['path']} is text and needs a tokenizer")
            source = TextSource(records, tokenizer, template, loss_on)
        if len(source) == 0:
            raise ValueError(f"{where}: {spec['path']} holds no documents")
        sources.append(source)
    return sources


class BatchLoader:
    """Global batches of `rows_per_step` packed rows; see the module doc."""

    def __init__(self, sources: list, weights: list[float], *, seq_len: int, rows_per_step: int, seed: int,
                 boundaries: list[float] = (), stage_steps: list[int] = (), heldout: int = 0) -> None:
        self.sources, self.seq_len, self.rows_per_step, self.seed = sources, seq_len, rows_per_step, seed
        self.stage_steps = list(stage_steps)
        stages = len(self.stage_steps) + 1
        for i, src in enumerate(sources):
            if heldout and len(src) <= heldout:
                raise ValueError(f"data.mixture.heldout: source {i} has {len(src)} documents, not more than the "
                                 f"{heldout} held out")
        # the last `heldout` documents of every source are never trained on (see heldout_rows)
        self.heldout = heldout
        self.buckets = [[np.array([d for d, diff in enumerate(src.difficulties[:len(src) - heldout])
                                   if stage_of(diff, list(boundaries)) == k], dtype=np.int64)
                         for k in range(stages)] for src in sources]
        self.weights = np.asarray(weights, dtype=np.float64)
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.cursors = {f"{s}/{k}": [0, 0] for s in range(len(sources)) for k in range(stages)}
        self.pending: list[list[int]] = []  # waiting pieces: [source, document, offset, length]
        self.stage = 0
        self._perms: dict[tuple[int, int], tuple[int, np.ndarray]] = {}  # (source, stage) -> (epoch, order)

    # -- the document stream -----------------------------------------------------------------------

    def _draw(self, stage: int) -> tuple[int, int]:
        available = [s for s in range(len(self.sources)) if len(self.buckets[s][stage])]
        if not available:
            raise ValueError(f"data.curriculum: no source has documents of stage {stage + 1}")
        cumulative = np.cumsum(self.weights[available])
        s = available[int(np.searchsorted(cumulative, self.rng.random() * cumulative[-1], side="right"))]
        bucket = self.buckets[s][stage]
        cursor = self.cursors[f"{s}/{stage}"]
        epoch, perm = self._perms.get((s, stage), (None, None))
        if epoch != cursor[0]:
            perm = np.random.Generator(np.random.PCG64([self.seed, s, stage, cursor[0]])).permutation(len(bucket))
            self._perms[s, stage] = (cursor[0], perm)
        d = int(bucket[perm[cursor[1]]])
        cursor[1] += 1
        if cursor[1] == len(bucket):
            cursor[0], cursor[1] = cursor[0] + 1, 0
        return s, d

    def next_batch(self, step: int) -> list[Row]:
        """The global batch of optimizer step `step` (steps must be asked for in order)."""
        stage = active_stage(step, self.stage_steps)
        if stage != self.stage:
            self.pending, self.stage = [], stage
        pieces = self.pending
        target = self.rows_per_step * self.seq_len
        tokens = sum(p[3] for p in pieces)
        while tokens < target:
            s, d = self._draw(stage)
            n = len(self.sources[s][d].ids)
            pieces = pieces + [[s, d, o, min(self.seq_len, n - o)] for o in range(0, n, self.seq_len)]
            tokens += n
        docs = {(p[0], p[1]): self.sources[p[0]][p[1]] for p in pieces}
        packed = pack_documents([docs[p[0], p[1]].ids[p[2]:p[2] + p[3]] for p in pieces], self.seq_len)
        rows = [self._row(r, pieces, docs) for r in packed[:self.rows_per_step]]
        left = sorted(int(i) for r in packed[self.rows_per_step:] for i in r.doc_index)
        self.pending = [pieces[i] for i in left]
        return rows  # tokens >= target, so packing gives at least rows_per_step rows

    def _row(self, packed, pieces, docs) -> Row:
        labels = np.full(self.seq_len, IGNORE_INDEX, dtype=np.int64)
        documents = []
        for k, i in enumerate(packed.doc_index.tolist()):
            s, d, offset, length = pieces[i]
            doc = docs[s, d]
            start = int(packed.cu_seqlens[k])
            targets = np.arange(offset + 1, offset + length + 1)
            valid = targets < len(doc.ids)
            if doc.mask is not None:
                valid[valid] = doc.mask[targets[valid]]
            labels[start:start + length] = np.where(valid, doc.ids[np.minimum(targets, len(doc.ids) - 1)],
                                                    IGNORE_INDEX)
            documents.append((s, d))
        return Row(torch.from_numpy(packed.input_ids), torch.from_numpy(labels),
                   torch.from_numpy(packed.position_ids), torch.from_numpy(packed.cu_seqlens.astype(np.int32)),
                   documents)

    def heldout_rows(self, source: int) -> list[Row]:
        """The held-out documents of `source` (its last `heldout`), cut and packed into rows as for training."""
        docs = {(source, d): self.sources[source][d] for d in range(len(self.sources[source]) - self.heldout,
                                                                    len(self.sources[source]))}
        pieces = [[s, d, o, min(self.seq_len, len(doc.ids) - o)] for (s, d), doc in docs.items()
                  for o in range(0, len(doc.ids), self.seq_len)]
        packed = pack_documents([docs[p[0], p[1]].ids[p[2]:p[2] + p[3]] for p in pieces], self.seq_len)
        return [self._row(r, pieces, docs) for r in packed]

    # -- resume ------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "cursors": {k: list(v) for k, v in self.cursors.items()},
                "pending": [list(p) for p in self.pending], "stage": self.stage, "weights": self.weights.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.weights = np.asarray(state.get("weights", self.weights), dtype=np.float64)
        self.cursors = {k: list(v) for k, v in state["cursors"].items()}
        self.pending = [list(p) for p in state["pending"]]
        self.stage = state["stage"]


def rank_rows(rows: list[Row], rank: int, world: int) -> list[Row]:
    """The contiguous share of a global batch's rows that data-parallel rank `rank` of `world` trains."""
    if len(rows) % world:
        raise ValueError(f"rows: {len(rows)} rows per step cannot be split over {world} data-parallel ranks")
    k = len(rows) // world
    return rows[rank * k:(rank + 1) * k]


def model_inputs(rows: list[Row], document_mask: bool, multiple_of: int = 1,
                 min_length: int = 0) -> dict[str, torch.Tensor | int]:
    """Model keyword arguments and labels for a group of rows.

    document_mask: the rows' real tokens back to back as one packed sequence (1, T) with cu_seqlens
    (padding dropped, no attention across documents); T is padded up to a multiple of multiple_of and to
    at least min_length (as context parallelism's zigzag sharding needs) by one more document of token 0
    without labels. Otherwise: (B, seq_len) rows, padding included (it has no labels), positions 0..seq_len-1 as
    the model defaults, attention across the row."""
    if document_mask:
        real = sum(r.num_tokens for r in rows)
        length = max(real, min_length)
        pad = length + -length % multiple_of - real
        filler = torch.zeros(pad, dtype=torch.int64)
        ids = torch.cat([*(r.input_ids[:r.num_tokens] for r in rows), filler])[None]
        labels = torch.cat([*(r.labels[:r.num_tokens] for r in rows), torch.full((pad,), IGNORE_INDEX)])[None]
        positions = torch.cat([*(r.position_ids[:r.num_tokens] for r in rows), torch.arange(pad)])[None]
        offsets, pieces = 0, [torch.zeros(1, dtype=torch.int32)]
        for r in rows:
            pieces.append(r.cu_seqlens[1:] + offsets)
            offsets += r.num_tokens
        if pad:
            pieces.append(torch.tensor([real + pad], dtype=torch.int32))
        cu_seqlens = torch.cat(pieces)
        max_seqlen = int((cu_seqlens[1:] - cu_seqlens[:-1]).max())
        return {"input_ids": ids, "labels": labels, "position_ids": positions, "cu_seqlens": cu_seqlens,
                "max_seqlen": max_seqlen}
    return {"input_ids": torch.stack([r.input_ids for r in rows]), "labels": torch.stack([r.labels for r in rows])}
