"""Labels, the ridge head, thresholds; annotate against a local stub endpoint; bad input named."""

import json

import numpy as np
import pytest

from iquest_core.data.jobs import annotate as annotate_job
from iquest_core.data.quality import classifier as qc
from iquest_core.data.quality.annotate import parse_score
from tests.serve.stub import StubEndpoint


def test_ridge_head_recovers_a_linear_score_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    y = x @ np.arange(8) + 3.0
    head = qc.RidgeHead.fit(x, y, l2=1e-6)
    assert np.allclose(head.predict(x), y, atol=1e-4)
    head.threshold, head.meta = 2.5, {"cut": 3}
    head.save(tmp_path / "h.npz")
    loaded = qc.RidgeHead.load(tmp_path / "h.npz")
    assert np.array_equal(loaded.predict(x), head.predict(x)) and loaded.threshold == 2.5 and loaded.meta == {"cut": 3}
    with pytest.raises(ValueError, match="head"):
        qc.RidgeHead.load(tmp_path / "missing.npz")


def test_best_f1_threshold_is_the_best_cut():
    scores = np.array([0.9, 0.8, 0.7, 0.4, 0.3, 0.1])
    positive = np.array([True, True, False, True, False, False])
    t = qc.best_f1_threshold(scores, positive)
    best = max(qc.f1_score(scores >= s, positive) for s in scores)
    assert qc.f1_score(scores >= t, positive) == best and t == 0.4


def test_load_labels_names_the_file_and_line(tmp_path):
    good = tmp_path / "labels.jsonl"
    good.write_text('{"id": "a", "score": 3}\n{"id": "b", "score": {"edu": 1.5}}\n')
    with pytest.raises(ValueError, match=r"line 2 .*'score' is \{'edu': 1.5\}"):
        qc.load_labels(good)
    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"id": "b", "score": {"edu": 1.5}}\n')
    assert qc.load_labels(nested, score_key="score.edu") == {"b": 1.5}
    for body, message in (('{"id": "a", "score": 1}\n{"id": "a", "score": 2}\n', "repeats the id 'a'"),
                          ('{"score": 1}\n', "no string 'id'"), ("not json\n", "line 1 .* not JSON"),
                          ('{"id": "a", "score": NaN}\n', "finite number"), ("", "holds no labels")):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(body)
        with pytest.raises(ValueError, match=message):
            qc.load_labels(bad)


def test_parse_score_takes_the_last_score():
    assert parse_score("The text is fine. Score: 2\nOn reflection, Score: 4") == 4.0
    assert parse_score("**Score:** 3") is None or parse_score("**Score:** 3") == 3.0
    assert parse_score("score = 5") == 5.0 and parse_score("no verdict") is None and parse_score("Score: 9") is None


def _docs(tmp_path, n=4):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"path": f"d{i}", "content": f"text {i}. Score: {i % 6}"}) + "\n"
                            for i in range(n)))
    return path


def test_annotate_against_a_stub_endpoint_with_a_retry(tmp_path):
    stub = StubEndpoint([503, "ok"])  # the stub echoes the user message, which ends with the score
    with stub:
        out = tmp_path / "labels.jsonl"
        code = annotate_job.main([str(_docs(tmp_path)), "--endpoint", stub.url, "--model", "stub", "--output",
                                  str(out), "--retries", "2", "--concurrency", "2"])
    assert code == 0
    assert qc.load_labels(out) == {"d0": 0.0, "d1": 1.0, "d2": 2.0, "d3": 3.0}
    assert len(stub.requests) == 5 and stub.requests[1][1]["messages"][0]["role"] == "system"


def test_annotate_unreachable_endpoint_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "labels.jsonl"
    code = annotate_job.main([str(_docs(tmp_path)), "--endpoint", "http://127.0.0.1:9/v1", "--model", "m",
                              "--output", str(out), "--retries", "0", "--timeout", "2"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("iquest data annotate: error: endpoint:") and "127.0.0.1:9" in err
    assert not out.exists()
