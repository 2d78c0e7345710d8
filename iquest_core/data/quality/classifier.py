"""Proxy quality classifiers: a small head on sentence embeddings (the student), trained on a teacher's
scores, and fastText on the same labels (the baseline DCLM selects data with).

    labels = load_labels("labels.jsonl")                 # {"id": ..., "score": float} per line
    head = RidgeHead.fit(embeddings, scores, l2=1.0)     # closed-form ridge regression, float64
    head.threshold = best_f1_threshold(head.predict(val_x), val_y >= cut)
    head.save("head.npz"); RidgeHead.load("head.npz").predict(embeddings)

The head predicts the teacher's score; a document is kept when the prediction is >= head.threshold.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iquest_core.atomic_io import atomic_path
from iquest_core.jsonl import read_jsonl


def load_labels(path: str | Path, *, score_key: str = "score", id_key: str = "id") -> dict[str, float]:
    """{document id: score} from a JSONL of {"id": str, "score": number}; a score may also be a dict of
    named scores ("score": {"educational": 3}) read by `score_key` = "score.educational". ValueError naming
    the file and line for anything else (not JSON, no id, a score that is not a finite number, an id twice)."""
    where = "labels"
    keys = score_key.split(".")
    labels: dict[str, float] = {}
    for number, record in read_jsonl(path, where):
        value = record
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        doc_id = record.get(id_key) if isinstance(record, dict) else None
        if not isinstance(doc_id, str) or not doc_id:
            raise ValueError(f"{where}: line {number} of {path} has no string {id_key!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{where}: line {number} of {path}: {score_key!r} is {value!r}, expected a finite number")
        if doc_id in labels:
            raise ValueError(f"{where}: line {number} of {path} repeats the id {doc_id!r}")
        labels[doc_id] = float(value)
    if not labels:
        raise ValueError(f"{where}: {path} holds no labels")
    return labels


@dataclass
class RidgeHead:
    """score ~ x @ weight + bias on embeddings x; `threshold` on the predicted score keeps a document."""
    weight: np.ndarray
    bias: float
    threshold: float = 0.0
    meta: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, *, l2: float = 1.0) -> RidgeHead:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] < 2:
            raise ValueError(f"x, y: expected (n, d) and (n,) with n >= 2, got {x.shape} and {y.shape}")
        mean_x, mean_y = x.mean(0), y.mean()
        xc = x - mean_x
        weight = np.linalg.solve(xc.T @ xc + l2 * np.eye(x.shape[1]), xc.T @ (y - mean_y))
        return cls(weight, float(mean_y - mean_x @ weight))

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != self.weight.shape[0]:
            raise ValueError(f"x: expected (n, {self.weight.shape[0]}) embeddings, got {x.shape}")
        return x @ self.weight + self.bias

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, weight=self.weight, bias=self.bias, threshold=self.threshold,
                     meta=json.dumps(self.meta))

    @classmethod
    def load(cls, path: str | Path) -> RidgeHead:
        try:
            with np.load(path) as data:
                return cls(data["weight"], float(data["bias"]), float(data["threshold"]), json.loads(str(data["meta"])))
        except (OSError, KeyError, ValueError) as error:
            raise ValueError(f"head: cannot load a classifier head from {path} ({error})") from None


def best_f1_threshold(scores: np.ndarray, positive: np.ndarray) -> float:
    """The score threshold (keep score >= t) with the highest F1 against the boolean `positive`."""
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(positive[order])
    kept = np.arange(1, len(scores) + 1)
    f1 = 2 * hits / (kept + positive.sum())
    return float(scores[order][int(np.argmax(f1))])


def f1_score(predicted: np.ndarray, positive: np.ndarray) -> float:
    tp = float(np.sum(predicted & positive))
    return 2 * tp / max(float(predicted.sum() + positive.sum()), 1.0)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


class FastTextBaseline:
    """fastText (bigrams) on the same labels: the teacher's scores rounded to integer classes; the
    prediction is the expected class under fastText's probabilities (so it ranks like a score)."""

    def __init__(self, *, seed: int = 0, epoch: int = 25, lr: float = 0.5, word_ngrams: int = 2) -> None:
        self.options = {"epoch": epoch, "lr": lr, "wordNgrams": word_ngrams, "seed": seed, "thread": 1,
                        "verbose": 0, "minCount": 1}
        self.model = None
        self.classes: list[float] = []

    @staticmethod
    def line(text: str) -> str:
        """One line of words; a word starting with "__label__" in the text would be read as a label."""
        return " ".join(text.split()).replace("__label__", "_label_")

    def fit(self, texts: list[str], scores: np.ndarray) -> FastTextBaseline:
        import fasttext

        classes = np.rint(np.asarray(scores)).astype(int)
        with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as handle:
            for text, label in zip(texts, classes):
                handle.write(f"__label__{label} {self.line(text)}\n")
            handle.flush()
            self.model = fasttext.train_supervised(handle.name, **self.options)
        self.classes = sorted({int(c) for c in classes})
        return self

    def predict(self, texts: list[str]) -> np.ndarray:
        labels, probabilities = self.model.predict([self.line(t) for t in texts], k=-1)
        return np.array([sum(float(lab.removeprefix("__label__")) * p for lab, p in zip(row, probs))
                         for row, probs in zip(labels, probabilities)])
