"""Document embeddings that read past the encoder's length limit: a document is cut into windows of at
most the encoder's max_seq_length word pieces, each window is embedded, and the window vectors are pooled.

    vectors, counts = embed_windows(model, texts, max_windows=8)   # (sum(counts), dim), windows per text
    features = pool(vectors, counts, "mean+max")                   # (len(texts), 2 * dim)
    features = embed_documents(model, texts, "mean")               # the two steps at once

Poolings: "first" = the first window only (what the encoder alone does: it cuts the text), "mean" = the
normalised mean of the windows, "mean+max" = that mean beside the element-wise max over the windows. A
text of at most one window gives the same vector under "first" and "mean". A long text gives at most
`max_windows` windows, spread evenly from its first to its last word piece (cost grows with the text up
to that cap, then stays flat).
"""

from __future__ import annotations

import numpy as np

from iquest_core.data.quality.encoder import embed

POOLINGS = ("first", "mean", "mean+max")
SPECIAL_TOKENS = 2  # [CLS] and [SEP] take two of the encoder's max_seq_length positions


def check_pooling(pooling: str, max_windows: int) -> None:
    if pooling not in POOLINGS:
        raise ValueError(f"pooling: {pooling!r} is not one of {', '.join(POOLINGS)}")
    if isinstance(max_windows, bool) or not isinstance(max_windows, int) or max_windows < 1:
        raise ValueError(f"max_windows: expected an integer >= 1, got {max_windows!r}")


def window_spans(tokenizer, text: str, size: int, max_windows: int) -> list[tuple[int, int]]:
    """Character spans (start, end) of consecutive windows of at most `size` word pieces over `text`, in
    order, each ending before a word piece that starts a word (unless one word fills the window); when
    there are more than `max_windows`, that many spread evenly, the first and the last included."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) <= size:
        return [(0, len(text))]
    bounds, start = [], 0
    while start < len(offsets):
        end = cut = min(start + size, len(offsets))
        while cut > start + 1 and cut < len(offsets) and offsets[cut][0] == offsets[cut - 1][1]:
            cut -= 1  # the piece at `cut` continues the word of the piece before it
        end = cut if cut > start + 1 else end
        bounds.append((start, end))
        start = end
    if len(bounds) > max_windows:
        picks = np.unique(np.linspace(0, len(bounds) - 1, max_windows).round().astype(int))
        bounds = [bounds[i] for i in picks]
    return [(offsets[s][0], offsets[e - 1][1]) for s, e in bounds]


def embed_windows(encoder, texts: list[str], *, max_windows: int = 8,
                  batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length embeddings of every window of every text, texts in order, and the number of windows of
    each text (>= 1; an empty text is one empty window)."""
    check_pooling("mean", max_windows)
    size = encoder.max_seq_length - SPECIAL_TOKENS
    pieces, counts = [], []
    for text in texts:
        spans = window_spans(encoder.tokenizer, text, size, max_windows)
        pieces.extend(text[start:end] for start, end in spans)
        counts.append(len(spans))
    return embed(encoder, pieces, batch_size=batch_size), np.array(counts, dtype=np.int64)


def pool(vectors: np.ndarray, counts: np.ndarray, pooling: str) -> np.ndarray:
    """One float32 row per text from its windows' rows of `vectors` (see the module docstring)."""
    check_pooling(pooling, 1)
    counts = np.asarray(counts)
    if counts.ndim != 1 or (counts < 1).any() or counts.sum() != len(vectors):
        raise ValueError(f"counts: expected windows per text (each >= 1) summing to {len(vectors)} rows")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    if pooling == "first":
        return vectors[starts]
    mean = np.add.reduceat(vectors, starts, axis=0) / counts[:, None]
    mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    if pooling == "mean":
        return mean.astype(np.float32)
    return np.hstack([mean, np.maximum.reduceat(vectors, starts, axis=0)]).astype(np.float32)


def embed_documents(encoder, texts: list[str], pooling: str = "mean", *, max_windows: int = 8,
                    batch_size: int = 32) -> np.ndarray:
    """pool(embed_windows(...)): one row per text (only the first window is embedded for "first")."""
    check_pooling(pooling, max_windows)
    if not texts:
        return np.zeros((0, embed(encoder, []).shape[1] * (2 if pooling == "mean+max" else 1)), np.float32)
    windows = 1 if pooling == "first" else max_windows
    return pool(*embed_windows(encoder, texts, max_windows=windows, batch_size=batch_size), pooling)
