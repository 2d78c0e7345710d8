"""Student (all-MiniLM-L6-v2 embeddings + ridge head; + an MLP head tuned on validation) against the fastText bigram baseline on the same
teacher labels, real documents, 3 seeds (each a different 60/20/20 train/validation/test split).

    python bench/quality_classifiers.py [N]     (embeddings cached outside the repo on the first run)

THE TEACHER IS NOT AN LLM (none is reachable here). It is a deterministic rubric, 0..5 points, over
facts the students never see as such:
    2 points  the document comes from the Python standard library (curated, reviewed documentation);
              third-party docstrings and README chunks get 0 (the source is not in the text given)
    1 point   each of the Gopher quality, Gopher repetition and FineWeb line rule sets passed (3 points)
A document is "high quality" at >= 3 points (F1 is measured on that cut, the threshold on the student's
or baseline's score being chosen on the validation split). It stands in for an LLM's judgment only as a
proxy: it mixes a provenance signal (topic and style of curated docs) with surface statistics.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from quality_corpus import cached_embeddings, frozen_corpus  # noqa: E402

from iquest_core.data.quality import classifier as qc  # noqa: E402
from iquest_core.data.quality import filters  # noqa: E402

CUT = 3.0


def teacher(doc: dict) -> float:
    rules = filters.text_reasons(doc["text"], ["gopher_quality", "gopher_repetition", "fineweb"])
    return 2.0 * (doc["source"] == "stdlib") + 3 - len(rules)


def mlp_head(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, seed: int):
    """One hidden layer of 256 (scikit-learn, early stopping on a tenth of the training rows), its L2
    weight chosen by Spearman correlation on the validation split."""
    from sklearn.neural_network import MLPRegressor

    fits = [MLPRegressor(hidden_layer_sizes=(256,), alpha=alpha, max_iter=300, early_stopping=True,
                         random_state=seed).fit(x, y) for alpha in (1e-3, 1e-2, 1e-1, 1.0)]
    return max(fits, key=lambda m: qc.spearman(m.predict(x_val), y_val))


def run(docs: list[dict], vectors: np.ndarray, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(docs))
    n = len(docs)
    train, val, test = order[:int(0.6 * n)], order[int(0.6 * n):int(0.8 * n)], order[int(0.8 * n):]
    y = np.array([teacher(d) for d in docs])
    texts = [d["text"] for d in docs]
    out = {}
    head = qc.RidgeHead.fit(vectors[train], y[train], l2=1.0)
    mlp = mlp_head(vectors[train], y[train], vectors[val], y[val], seed)
    baseline = qc.FastTextBaseline(seed=seed).fit([texts[i] for i in train], y[train])
    for name, predict in (("student", lambda idx: head.predict(vectors[idx])),
                          ("student-mlp", lambda idx: mlp.predict(vectors[idx])),
                          ("fasttext", lambda idx: baseline.predict([texts[i] for i in idx]))):
        threshold = qc.best_f1_threshold(predict(val), y[val] >= CUT)
        scores = predict(test)
        out[name] = (qc.spearman(scores, y[test]), qc.f1_score(scores >= threshold, y[test] >= CUT))
    return out


def throughput(docs: list[dict], vectors: np.ndarray) -> dict:
    """Documents/s on one core (torch and fastText on one thread): embedding + head, and fastText."""
    import torch

    from iquest_core.data.quality import encoder

    torch.set_num_threads(1)
    sample = [d["text"] for d in docs[:200]]
    y = np.array([teacher(d) for d in docs])
    head = qc.RidgeHead.fit(vectors, y)
    model = encoder.load_encoder()
    start = time.perf_counter()
    head.predict(encoder.embed(model, sample))
    student = len(sample) / (time.perf_counter() - start)
    baseline = qc.FastTextBaseline().fit([d["text"] for d in docs], y)
    start = time.perf_counter()
    baseline.predict(sample * 10)
    return {"student": student, "fasttext": 10 * len(sample) / (time.perf_counter() - start)}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 6000
    docs = frozen_corpus(n)
    vectors = cached_embeddings(docs, f"corpus-{n}")
    y = np.array([teacher(d) for d in docs])
    print(f"{len(docs)} documents; teacher score histogram {np.bincount(y.astype(int)).tolist()}; "
          f"positives (>= {CUT}) {np.mean(y >= CUT):.3f}; load {os.getloadavg()[0]:.1f}")
    rows = {name: [] for name in ("student", "student-mlp", "fasttext")}
    for seed in (0, 1, 2):
        result = run(docs, vectors, seed)
        for name, metrics in result.items():
            rows[name].append(metrics)
        print(f"seed {seed}: " + "  ".join(f"{k} rho={v[0]:.3f} F1={v[1]:.3f}" for k, v in result.items()))
    speed = throughput(docs, vectors)
    print(f"{'model':<12}{'Spearman':>18}{'F1':>18}{'docs/s/core':>14}")
    for name, metrics in rows.items():
        m = np.array(metrics)
        print(f"{name:<12}{m[:, 0].mean():>10.3f} ± {m[:, 0].std():.3f}{m[:, 1].mean():>10.3f} ± {m[:, 1].std():.3f}"
              f"{speed[name.split('-')[0]]:>14.0f}")


if __name__ == "__main__":
    main()
