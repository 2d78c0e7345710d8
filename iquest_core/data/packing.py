"""Best-fit-decreasing packing of token documents into fixed-length rows for the varlen attention path.

    rows = pack_documents(docs, seq_len=4096)
    row.input_ids (seq_len,) int64        documents' pieces back to back, then pad_id
    row.labels (seq_len,) int64           the next token within the same piece, -100 at each piece's last
                                          token and on padding (no target crosses a document boundary)
    row.position_ids (seq_len,) int64     0, 1, ... restarting at every piece (and for the padding)
    row.cu_seqlens (pieces + 1,) int32    piece boundaries: starts at 0, ends at row.num_tokens
    row.doc_index (pieces,) int64         which input document each piece comes from
    row.doc_offset (pieces,) int64        where in that document the piece starts

A document longer than seq_len is cut into pieces of seq_len tokens (the rest a shorter piece); nothing is
dropped and every document token lands in exactly one row once; empty documents contribute nothing.
Pieces are placed longest first, each into the row with the least room that still fits it (ties: the
earliest row), so the output is a deterministic function of the inputs.

The model (iquest_core.model) wants cu_seqlens to end at the row length: pass `row.model_cu_seqlens`,
which adds the padding as one more segment (it has no labels, so the loss is unchanged).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = -100


@dataclass(frozen=True)
class PackedRow:
    input_ids: np.ndarray
    labels: np.ndarray
    position_ids: np.ndarray
    cu_seqlens: np.ndarray
    doc_index: np.ndarray
    doc_offset: np.ndarray

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) tokens in the row."""
        return int(self.cu_seqlens[-1])

    @property
    def model_cu_seqlens(self) -> np.ndarray:
        """cu_seqlens ending at the row length: the padding, if any, as a last segment (int32)."""
        if self.num_tokens == len(self.input_ids):
            return self.cu_seqlens
        return np.append(self.cu_seqlens, np.int32(len(self.input_ids))).astype(np.int32)


def pack_documents(docs: Iterable[Sequence[int]], seq_len: int, *, pad_id: int = 0) -> list[PackedRow]:
    """Pack token documents into rows of seq_len tokens (see the module docstring)."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise ValueError(f"seq_len: expected a positive int, got {seq_len!r}")
    seq_len = int(seq_len)
    arrays = [_tokens(doc, d) for d, doc in enumerate(docs)]
    pieces = [(min(seq_len, len(a) - start), d, start)
              for d, a in enumerate(arrays) for start in range(0, len(a), seq_len)]
    pieces.sort(key=lambda p: (-p[0], p[1], p[2]))

    rows: list[list[tuple[int, int, int]]] = []
    room: list[tuple[int, int]] = []  # sorted (free tokens, row) of rows that are not full
    for piece in pieces:
        i = bisect.bisect_left(room, (piece[0], -1))
        if i == len(room):
            row, free = len(rows), seq_len
            rows.append([])
        else:
            free, row = room.pop(i)
        rows[row].append(piece)
        if free - piece[0] > 0:
            bisect.insort(room, (free - piece[0], row))
    return [_build_row(arrays, row, seq_len, pad_id) for row in rows]


def _tokens(doc: Sequence[int], d: int) -> np.ndarray:
    """The document as a 1-D integer array, without a copy when it already is one (memory-mapped shards)."""
    array = np.asarray(doc)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise ValueError(f"docs: document {d} must be a 1-D sequence of token ids, got {array.dtype} {array.shape}")
    return array


def _build_row(arrays: list[np.ndarray], pieces: list[tuple[int, int, int]], seq_len: int, pad_id: int) -> PackedRow:
    input_ids = np.full(seq_len, pad_id, dtype=np.int64)
    labels = np.full(seq_len, IGNORE_INDEX, dtype=np.int64)
    position_ids = np.zeros(seq_len, dtype=np.int64)
    cu_seqlens = np.zeros(len(pieces) + 1, dtype=np.int32)
    at = 0
    for k, (length, d, start) in enumerate(pieces):
        tokens = arrays[d][start:start + length]
        input_ids[at:at + length] = tokens
        labels[at:at + length - 1] = tokens[1:]
        position_ids[at:at + length] = np.arange(length)
        at += length
        cu_seqlens[k + 1] = at
    position_ids[at:] = np.arange(seq_len - at)
    return PackedRow(input_ids, labels, position_ids, cu_seqlens,
                     np.array([p[1] for p in pieces], dtype=np.int64), np.array([p[2] for p in pieces], dtype=np.int64))
