"""Window pooling of document embeddings: spans, pooling, and a quality signal that sits after the first
window, through train-classifier and the quality_score step (an encoder copy with 32-piece windows keeps
it fast; the window logic reads max_seq_length, whatever it is)."""

import json

import numpy as np
import pytest

from iquest_core.data.jobs import train_classifier
from iquest_core.data.quality import encoder, windows
from iquest_core.data.steps import ShardContext, make_step

PREFACE = ("This note belongs to the shared archive of the project and was copied here from the older "
           "wiki pages, where every page started with the same introduction about its owners. ")
TOPICS = ["the river and its bridges", "a recipe for bread", "sorting algorithms in Python",
          "the history of the old town", "how to bake a cake", "binary search over a list"]


@pytest.fixture(scope="module")
def short_model(tmp_path_factory):
    """The installed MiniLM with max_seq_length 32: the same weights, 30 word pieces per window."""
    folder = tmp_path_factory.mktemp("minilm32")
    for entry in encoder.wheel_model_dir().iterdir():
        if entry.name != "sentence_bert_config.json":
            (folder / entry.name).symlink_to(entry)
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 32, "do_lower_case": False}))
    return folder


def test_window_spans_cover_the_text_in_order_and_cap_evenly(short_model):
    tokenizer = encoder.load_encoder(short_model).tokenizer
    text = " ".join(f"word{i}" for i in range(100))
    pieces = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    spans = windows.window_spans(tokenizer, text, 30, 100)
    assert len(spans) >= -(-pieces // 30) > 1 and spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] < b[0] and text[b[0] - 1] == " " for a, b in zip(spans, spans[1:]))  # whole words
    blob = "x." * 200  # 400 adjacent pieces and no space: cut between them rather than give up
    assert len(windows.window_spans(tokenizer, blob, 30, 100)) > 1
    assert all(len(tokenizer(text[s:e], add_special_tokens=False)["input_ids"]) <= 30 for s, e in spans)
    capped = windows.window_spans(tokenizer, text, 30, 2)
    assert capped == [spans[0], spans[-1]]
    assert windows.window_spans(tokenizer, "a short text", 30, 4) == [(0, 12)]


def test_pool_first_mean_and_max():
    vectors = np.array([[1, 0], [0, 1], [0.6, 0.8]], np.float32)
    counts = np.array([2, 1])
    assert np.array_equal(windows.pool(vectors, counts, "first"), vectors[[0, 2]])
    assert np.allclose(windows.pool(vectors, counts, "mean"), [[0.5 ** 0.5, 0.5 ** 0.5], [0.6, 0.8]])
    assert np.allclose(windows.pool(vectors, counts, "mean+max")[:, 2:], [[1, 1], [0.6, 0.8]])
    with pytest.raises(ValueError, match="pooling: 'max'"):
        windows.pool(vectors, counts, "max")
    with pytest.raises(ValueError, match="counts"):
        windows.pool(vectors, np.array([1, 1]), "mean")
    with pytest.raises(ValueError, match="max_windows"):
        windows.embed_documents(None, ["x"], "mean", max_windows=0)


def test_signal_after_the_first_window_reaches_the_embedding(short_model):
    model = encoder.load_encoder(short_model)
    cake, search = (PREFACE + f"Then it explains {TOPICS[i]} in detail." for i in (4, 5))
    first = windows.embed_documents(model, [cake, search], "first")
    assert np.allclose(first[0], first[1])  # the control: the first window alone cannot tell them apart
    tail = encoder.embed(model, [f"It explains {TOPICS[5]} in detail."])[0]
    for pooling in ("mean", "mean+max"):
        pooled = windows.embed_documents(model, [cake, search], pooling)[:, :len(tail)]
        assert pooled[1] @ tail > pooled[0] @ tail + 0.02
    assert windows.embed_documents(model, [], "mean+max").shape == (0, 2 * len(tail))


def _auc(scored):
    good = [d["quality_score"] for d in scored if int(d["path"][1:]) % 6 in (2, 5)]
    other = [d["quality_score"] for d in scored if int(d["path"][1:]) % 6 not in (2, 5)]
    return sum(g > o for g in good for o in other) / (len(good) * len(other))


def test_train_and_score_read_past_the_first_window(tmp_path, short_model, capsys):
    rows = [{"path": f"d{i}", "content": f"{PREFACE}Part {i} is about {TOPICS[i % 6]}.", "repo": None}
            for i in range(24)]
    docs, labels = tmp_path / "docs.jsonl", tmp_path / "labels.jsonl"
    docs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    labels.write_text("".join(json.dumps({"id": f"d{i}", "score": 5.0 if i % 6 in (2, 5) else 1.0}) + "\n"
                              for i in range(24)))
    aucs = {}
    for pooling in ("first", "mean"):
        head = tmp_path / f"{pooling}.npz"
        assert train_classifier.main([str(docs), "--labels", str(labels), "--output", str(head), "--validation",
                                      "0.5", "--model", str(short_model), "--pooling", pooling]) == 0
        step = make_step({"name": "quality_score", "head": str(head), "model": str(short_model), "drop": False})
        aucs[pooling] = _auc(list(step.run(iter(rows), ShardContext(0, "shard-00000"))))
    assert aucs["mean"] >= 0.9 and aucs["first"] < 0.6, aucs
    assert train_classifier.main([str(docs), "--labels", str(labels), "--output", str(tmp_path / "x.npz"),
                                  "--max-windows", "0"]) == 2
    assert "max_windows" in capsys.readouterr().err
