"""Scoring throughput of the quality classifiers on one core: the student (all-MiniLM-L6-v2 embeddings of
every window of the document, mean-pooled as train-classifier's default, + ridge head, one torch thread)
against the fastText bigram baseline, on the same 64 real documents (stdlib docstrings, package
docstrings and READMEs: bench/quality_corpus.py, labels of bench/quality_teachers.py's rubric); and fim.split on real C/C++ headers whose
plain parse has errors, with the annotation macros blanked (what fim.split does) against the plain parse's
candidate nodes (what it would cost without blanking). extra_info holds documents/s (per core)."""

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from quality_corpus import frozen_corpus  # noqa: E402
from quality_teachers import rubric  # noqa: E402

from iquest_core.data import fim, syntax  # noqa: E402
from iquest_core.data.quality import classifier as qc  # noqa: E402
from iquest_core.data.quality import encoder, windows  # noqa: E402

DOCS = 64
HEADERS = sorted(Path("/usr/include").glob("*.h"))[::6][:16]


@pytest.fixture(scope="module")
def scorers():
    torch.set_num_threads(1)
    docs = frozen_corpus(6000)[::10]
    texts = [d["text"] for d in docs]
    labels = np.array([rubric(d) for d in docs])
    model = encoder.load_encoder()
    head = qc.RidgeHead.fit(windows.embed_documents(model, texts[:200]), labels[:200])
    baseline = qc.FastTextBaseline().fit(texts, labels)
    return {"student": lambda batch: head.predict(windows.embed_documents(model, batch)),
            "fasttext": baseline.predict}, texts[-DOCS:]


@pytest.mark.parametrize("impl", ["student", "fasttext"])
def test_score_documents(benchmark, record_median, scorers, impl):
    score, batch = scorers
    group = f"quality score {DOCS} documents, one core"
    benchmark.group = group
    scores = benchmark.pedantic(score[impl], args=(batch,), rounds=3 if impl == "student" else 20, iterations=1)
    assert len(scores) == DOCS and np.isfinite(scores).all()
    benchmark.extra_info.update(documents_per_s=DOCS / benchmark.stats.stats.median)
    record_median(group, impl, benchmark, subject=impl == "student")


def headers_with_errors() -> list[str]:
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in HEADERS]
    return [t for t in texts if not syntax.parse(t, "cpp").clean]


def split_blanked(texts):
    rng = random.Random(0)
    return [fim.split(text, "function", rng, language="cpp") for text in texts]


def plain_nodes(texts):
    return [syntax.parse(text, "cpp").nodes_clear_of_errors("function") for text in texts]


@pytest.mark.skipif(len(HEADERS) < 16, reason="no C headers under /usr/include")
@pytest.mark.parametrize("impl", ["blanked", "plain"])
def test_header_function_split(benchmark, record_median, impl):
    texts = headers_with_errors()
    group = f"C/C++ function-level candidates, {len(texts)} /usr/include headers with errors"
    benchmark.group = group
    benchmark.pedantic(split_blanked if impl == "blanked" else plain_nodes, args=(texts,), rounds=3, iterations=1)
    benchmark.extra_info.update(documents_per_s=len(texts) / benchmark.stats.stats.median)
    record_median(group, impl, benchmark, subject=impl == "blanked")
