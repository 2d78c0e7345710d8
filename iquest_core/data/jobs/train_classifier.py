"""`iquest data train-classifier DOCS.jsonl --labels labels.jsonl --output head.npz`: a quality classifier.

The student: all-MiniLM-L6-v2 sentence embeddings (iquest_core.data.quality.encoder; --model DIR for
another sentence-transformers folder) of windows over the whole document, pooled (--pooling, see
iquest_core.data.quality.windows), and a ridge-regression head fitted to the teacher's scores on a
seeded --validation share held out; the keep threshold is the one with the best F1 on the held-out part
against "score >= --cut". Prints the held-out Spearman correlation and F1 (and fastText's on the same
split with --compare-fasttext). The head file records the encoder, the pooling, the cut and the threshold; the
`quality_score` pipeline step applies it.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from iquest_core.command_line import CommandParser
from iquest_core.data.jobs import Summary, run_main, unit_interval
from iquest_core.data.jobs.annotate import read_texts
from iquest_core.data.quality import classifier as qc
from iquest_core.data.quality.windows import POOLINGS


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="iquest data train-classifier", description=__doc__.split("\n\n")[0])
    p.add_argument("docs", help="JSONL of documents")
    p.add_argument("--labels", required=True, help="JSONL of {id, score} (iquest data annotate, or any teacher)")
    p.add_argument("--output", required=True, help="the head (.npz)")
    p.add_argument("--score-key", default="score", help="the label field (a.b for a nested score)")
    p.add_argument("--id-key", default="path", help="the document id field")
    p.add_argument("--text-key", default="content", help="the document text field")
    p.add_argument("--model", default=None, help="a sentence-transformers folder (default: the installed MiniLM)")
    p.add_argument("--pooling", choices=POOLINGS, default="mean",
                   help="how window embeddings make one document vector ('first' reads only the first window)")
    p.add_argument("--max-windows", type=int, default=8, help="windows read per document at most")
    p.add_argument("--cut", type=float, default=3.0, help="teacher score from which a document is high quality")
    p.add_argument("--validation", type=unit_interval, default=0.2, help="share held out to pick the threshold")
    p.add_argument("--l2", type=float, default=1.0, help="ridge penalty")
    p.add_argument("--seed", type=int, default=0, help="held-out split seed")
    p.add_argument("--compare-fasttext", action="store_true", help="also fit the fastText bigram baseline")
    return p


def run(args: argparse.Namespace) -> Summary:
    from iquest_core.data.quality import encoder, windows

    labels = qc.load_labels(args.labels, score_key=args.score_key)
    documents = [(i, t) for i, t in read_texts(args.docs, args.id_key, args.text_key) if i in labels]
    if len(documents) < 10:
        raise ValueError(f"labels: only {len(documents)} of the documents in {args.docs} have a label in "
                         f"{args.labels} (need >= 10)")
    model = encoder.load_encoder(args.model)
    texts = [t for _, t in documents]
    x = windows.embed_documents(model, texts, args.pooling, max_windows=args.max_windows)
    y = np.array([labels[i] for i, _ in documents])
    order = np.random.default_rng(args.seed).permutation(len(documents))
    held = max(2, int(round(args.validation * len(documents))))
    val, train = order[:held], order[held:]
    head = qc.RidgeHead.fit(x[train], y[train], l2=args.l2)
    positive = y[val] >= args.cut
    head.threshold = qc.best_f1_threshold(head.predict(x[val]), positive)
    head.meta = {"model": str(args.model or encoder.MODEL_NAME), "pooling": args.pooling,
                 "max_windows": args.max_windows, "cut": args.cut, "documents": len(documents)}
    head.save(args.output)
    outcomes = Counter({"train": len(train), "held_out": len(val)})
    scores = head.predict(x[val])
    print(f"student: Spearman {qc.spearman(scores, y[val]):.3f}  F1 {qc.f1_score(scores >= head.threshold, positive):.3f}"
          f"  threshold {head.threshold:.3f}")
    if args.compare_fasttext:
        baseline = qc.FastTextBaseline(seed=args.seed).fit([texts[i] for i in train], y[train])
        predicted = baseline.predict([texts[i] for i in val])
        threshold = qc.best_f1_threshold(predicted, positive)
        print(f"fastText: Spearman {qc.spearman(predicted, y[val]):.3f}  F1 {qc.f1_score(predicted >= threshold, positive):.3f}"
              " (threshold chosen on the same held-out part)")
    return Summary(len(documents), outcomes)


def main(argv: list[str] | None = None) -> int:
    return run_main("iquest data train-classifier", parser(), run, argv)
