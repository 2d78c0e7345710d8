"""Students (all-MiniLM-L6-v2 embeddings + a small head) against the fastText bigram baseline on the same
teacher labels, real documents (bench/quality_corpus.py), two teachers, 3 seeds (each a different
60/20/20 train/validation/test split). NEITHER TEACHER IS AN LLM: see bench/quality_teachers.py.

    python bench/quality_classifiers.py [N [TEACHER ...]]   (N = 6000, both teachers by default; window
                                                            embeddings cached outside the repo on first use)

Students read the whole document: windows of 254 word pieces (at most 8), embedded and pooled
(iquest_core.data.quality.windows, as the quality_score step does). Everything is chosen on the
validation split, never on the test split:
    ridge (first window)  the earlier student, kept as a control: ridge L2 only
    ridge                 pooling (first / mean / mean+max) and L2 by validation Spearman
    MLP                   one hidden layer of 256 (scikit-learn, early stopping) on the pooling the ridge
                          chose, L2 weight by validation Spearman
    logistic              logistic regression on the teacher's cut (high quality or not), pooling and C by
                          validation Spearman of its probability
    student               ridge, MLP or logistic, whichever has the higher validation Spearman: the claimed
                          student
    fastText              word n-grams (1-3), epochs, learning rate, and target (the rounded score, or the
                          teacher's cut as two classes) by validation Spearman; a setting whose training
                          diverges (fastText's "Encountered NaN") is no candidate
F1 is on the teacher's cut (high quality or not), at each model's threshold with the best validation F1.
Throughput: documents per CPU second of this process (one torch thread, fastText one thread: documents/s
on one core, whatever the machine's load), 200 documents spread over the corpus; the student embeds
every window (its cost), fastText reads the whole text.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from quality_corpus import cached_windows, frozen_corpus  # noqa: E402
from quality_teachers import TEACHERS, coherence_corpus  # noqa: E402

from iquest_core.data.quality import classifier as qc  # noqa: E402
from iquest_core.data.quality import windows  # noqa: E402

L2S = (0.1, 1.0, 10.0, 100.0)
ALPHAS = (1e-3, 1e-2, 1e-1, 1.0)
CS = (0.1, 1.0, 10.0)
FASTTEXT = {"epoch": (5, 25, 50), "lr": (0.1, 0.5), "word_ngrams": (1, 2, 3), "target": ("score", "cut")}
MODELS = ("ridge (first window)", "ridge", "MLP", "logistic", "student", "fastText")


def pooled(window_vectors: dict[str, np.ndarray], docs: list[dict]) -> dict[str, np.ndarray]:
    """{pooling: (len(docs), d) features} from each document's window embeddings."""
    stacked = np.vstack([window_vectors[d["id"]] for d in docs])
    counts = np.array([len(window_vectors[d["id"]]) for d in docs])
    return {pooling: windows.pool(stacked, counts, pooling) for pooling in windows.POOLINGS}


def best_on_validation(candidates, fit, score_val):
    """The fitted candidate with the highest validation Spearman, and that candidate (one fit held at a
    time besides the best: a fastText bigram model is ~1 GB); `fit` returns None for no candidate."""
    best, best_score = None, -np.inf
    for candidate in candidates:
        model = fit(candidate)
        if model is None:
            continue
        score = score_val(model)
        if score > best_score:
            best, best_score = (model, candidate), score
    return best


def run(docs: list[dict], features: dict[str, np.ndarray], y: np.ndarray, cut: float, seed: int) -> dict:
    """{model: (test Spearman, test F1, validation Spearman, what was chosen)} for one split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPRegressor

    order = np.random.default_rng(seed).permutation(len(docs))
    n = len(docs)
    train, val, test = order[:int(0.6 * n)], order[int(0.6 * n):int(0.8 * n)], order[int(0.8 * n):]
    texts = [d["text"] for d in docs]

    def ridge(pooling, l2):
        return pooling, qc.RidgeHead.fit(features[pooling][train], y[train], l2=l2)

    def on(model, idx):
        if isinstance(model, qc.FastTextBaseline):
            return model.predict([texts[i] for i in idx])
        pooling, head = model
        if hasattr(head, "predict_proba"):
            return head.predict_proba(features[pooling][idx])[:, 1]
        return head.predict(features[pooling][idx])

    def fasttext(epoch, lr, word_ngrams, target):
        labels = y[train] if target == "score" else (y[train] >= cut).astype(float)
        try:
            return qc.FastTextBaseline(seed=seed, epoch=epoch, lr=lr, word_ngrams=word_ngrams).fit(
                [texts[i] for i in train], labels)
        except RuntimeError:  # the training diverged
            return None

    def val_rho(model):
        return qc.spearman(on(model, val), y[val])

    chosen = {}
    chosen["ridge (first window)"] = best_on_validation(L2S, lambda l2: ridge("first", l2), val_rho)
    chosen["ridge"] = best_on_validation(itertools.product(windows.POOLINGS, L2S), lambda c: ridge(*c), val_rho)
    pooling = chosen["ridge"][1][0]
    chosen["MLP"] = best_on_validation(
        ALPHAS, lambda alpha: (pooling, MLPRegressor(hidden_layer_sizes=(256,), alpha=alpha, max_iter=300,
                                                     early_stopping=True, random_state=seed)
                               .fit(features[pooling][train], y[train])), val_rho)
    chosen["logistic"] = best_on_validation(
        itertools.product(windows.POOLINGS, CS),
        lambda c: (c[0], LogisticRegression(C=c[1], max_iter=3000).fit(features[c[0]][train], y[train] >= cut)),
        val_rho)
    chosen["student"] = max(((chosen[m][0], (chosen[m][0][0], m)) for m in ("ridge", "MLP", "logistic")),
                            key=lambda pair: val_rho(pair[0]))  # choice: (pooling, head)
    binary = set(np.unique(y)) <= {0.0, 1.0}  # the cut is the score itself: one target
    chosen["fastText"] = best_on_validation(
        (c for c in itertools.product(*FASTTEXT.values()) if not (binary and c[3] == "cut")),
        lambda c: fasttext(*c), val_rho)
    out = {}
    for name, (model, choice) in chosen.items():
        threshold = qc.best_f1_threshold(on(model, val), y[val] >= cut)
        scores = on(model, test)
        out[name] = (qc.spearman(scores, y[test]), qc.f1_score(scores >= threshold, y[test] >= cut),
                     val_rho(model), choice)
    return out


def throughput(docs: list[dict], y: np.ndarray, pooling: str) -> dict:
    """Documents per CPU second: window embedding ("first": the first window only; a head adds
    microseconds), and fastText."""
    import torch

    from iquest_core.data.quality import encoder

    torch.set_num_threads(1)
    sample = [d["text"] for d in docs[::max(1, len(docs) // 200)][:200]]
    model = encoder.load_encoder()
    speed = {}
    for name, how in (("ridge (first window)", "first"), ("student", pooling)):
        start = time.process_time()
        windows.embed_documents(model, sample, how)
        speed[name] = len(sample) / (time.process_time() - start)
    baseline = qc.FastTextBaseline().fit([d["text"] for d in docs], y)
    start = time.process_time()
    baseline.predict(sample * 10)
    speed["fastText"] = 10 * len(sample) / (time.process_time() - start)
    return speed


def report(name: str, docs: list[dict], features: dict[str, np.ndarray]) -> None:
    teacher, cut = TEACHERS[name]
    y = np.array([teacher(d) for d in docs])
    print(f"\nteacher {name}: {len(docs)} documents; score histogram {np.bincount(y.astype(int)).tolist()}; "
          f"high quality (>= {cut}) {np.mean(y >= cut):.3f}; load {os.getloadavg()[0]:.1f}")
    rows = {model: [] for model in MODELS}
    for seed in (0, 1, 2):
        result = run(docs, features, y, cut, seed)
        for model, metrics in result.items():
            rows[model].append(metrics)
        print(f"seed {seed}: " + "; ".join(f"{m} rho={v[0]:.3f} F1={v[1]:.3f} (val rho {v[2]:.3f}, {v[3]})"
                                           for m, v in result.items()))
    poolings = [r[3][0] for r in rows["student"]]
    speed = throughput(docs, y, max(set(poolings), key=poolings.count))
    print(f"{'model':<22}{'Spearman':>16}{'F1':>16}{'docs/CPU s':>13}")
    for model, metrics in rows.items():
        m = np.array([r[:2] for r in metrics])
        rate = speed.get(model, speed["student"])
        print(f"{model:<22}{m[:, 0].mean():>9.3f} ± {m[:, 0].std():.3f}{m[:, 1].mean():>9.3f} ± {m[:, 1].std():.3f}"
              f"{rate:>13.1f}")
    margin = np.array([r[:2] for r in rows["student"]]) - np.array([r[:2] for r in rows["fastText"]])
    print(f"student - fastText per seed: Spearman {np.round(margin[:, 0], 3).tolist()}, F1 "
          f"{np.round(margin[:, 1], 3).tolist()}; mean {margin[:, 0].mean():+.3f} / {margin[:, 1].mean():+.3f} "
          f"(criterion: >= +0.05 / +0.03): {'met' if (margin.mean(0) >= (0.05, 0.03)).all() else 'NOT met'}")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 6000
    teachers = sys.argv[2:] or list(TEACHERS)
    if set(teachers) - set(TEACHERS):
        raise SystemExit(f"teacher: expected some of {', '.join(TEACHERS)}, got {' '.join(teachers)}")
    corpus = frozen_corpus(n)
    vectors = cached_windows(corpus, f"corpus-{n}")
    if "rubric" in teachers:
        report("rubric", corpus, pooled(vectors, corpus))
    if "coherence" in teachers:
        spliced = coherence_corpus(corpus)
        vectors.update(cached_windows([d for d in spliced if d["spliced"]], f"spliced-{n}"))
        report("coherence", spliced, pooled(vectors, spliced))
    print(f"load at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
