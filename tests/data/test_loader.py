"""The loader: chat rendering and assistant-only labels, labels are each document's next token, the
difficulty curriculum's order, mixture weights, exact resume from state_dict."""

import random

import numpy as np
import pytest
import torch

from iquest_core.data.tokenizer import train_tokenizer
from iquest_core.data.chat import chat_text, render_chat
from iquest_core.data.loader import BatchLoader, TextSource, model_inputs, rank_rows

WORDS = "def return class import yield lambda while for if else try except raise with as pass None True".split()


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


@pytest.fixture(scope="module")
def tokenizer():
    rng = random.Random(0)
    return train_tokenizer([_text(rng, 200) for _ in range(50)], vocab_size=300)


def _conversation(rng: random.Random) -> list[dict]:
    return [{"role": "system", "content": _text(rng, 5)},
            {"role": "user", "content": _text(rng, rng.randint(1, 30))},
            {"role": "assistant", "content": _text(rng, rng.randint(1, 30)), "reasoning": _text(rng, 8),
             "tool_calls": [{"name": "run", "arguments": {"cmd": _text(rng, 3)}}]},
            {"role": "tool", "content": _text(rng, 6)},
            {"role": "assistant", "content": _text(rng, rng.randint(1, 40))}]


@pytest.mark.parametrize("template", ["instruct", "thinking"])
def test_render_chat_marks_exactly_the_assistant_bodies(tokenizer, template):
    rng = random.Random(1)
    messages = _conversation(rng)
    ids, mask = render_chat(messages, tokenizer, template)
    assert tokenizer.decode(ids) == chat_text(messages, template)
    learned = tokenizer.decode([i for i, m in zip(ids, mask) if m])
    bodies = chat_text([m for m in messages if m["role"] == "assistant"], template)
    assert learned == bodies.replace("<|im_start|>assistant\n", "").replace("<|im_end|>\n", "<|im_end|>")
    reasoning = messages[2]["reasoning"]
    assert (f"<think>\n{reasoning}\n</think>" in learned) == (template == "thinking")
    assert '<tool_call>\n{"name": "run"' in learned and "<tool_response>" not in learned


def test_render_chat_rejects_unknown_roles(tokenizer):
    with pytest.raises(ValueError, match=r"messages\[1\].role"):
        render_chat([{"role": "user", "content": "x"}, {"role": "robot", "content": "y"}], tokenizer)


def _loader(sources, rows=4, seq_len=48, **kw):
    return BatchLoader(sources, [1.0] * len(sources), seq_len=seq_len, rows_per_step=rows, seed=3, **kw)


def test_sft_labels_only_assistant_tokens_and_each_the_next_token_of_its_document(tokenizer):
    rng = random.Random(2)
    records = [{"messages": _conversation(rng)} for _ in range(12)]
    source = TextSource(records, tokenizer, "instruct", "assistant")
    loader = _loader([source])
    for step in range(5):
        for row in loader.next_batch(step):
            for k, (s, d) in enumerate(row.documents):
                doc = source[d]
                lo, hi = int(row.cu_seqlens[k]), int(row.cu_seqlens[k + 1])
                piece = row.input_ids[lo:hi].numpy()
                starts = [o for o in range(len(doc.ids) - len(piece) + 1) if np.array_equal(doc.ids[o:o + len(piece)], piece)]
                assert starts, "a piece is not a slice of its document"
                o = starts[0]
                for i in range(len(piece)):
                    target = o + i + 1
                    expected = doc.ids[target] if target < len(doc.ids) and doc.mask[target] else -100
                    assert int(row.labels[lo + i]) == expected
            assert (row.labels[row.num_tokens:] == -100).all()


def test_curriculum_draws_each_stage_from_its_step(tokenizer):
    rng = random.Random(4)
    difficulties = [0.1, 0.5, 0.9]
    records = [{"text": _text(rng, rng.randint(5, 40)), "difficulty": rng.choice(difficulties)} for _ in range(60)]
    source = TextSource(records, tokenizer, "instruct", "all")
    loader = _loader([source], boundaries=[0.33, 0.66], stage_steps=[3, 5])
    seen = []
    for step in range(8):
        stage_difficulty = difficulties[0 if step < 3 else 1 if step < 5 else 2]
        got = {source[d].difficulty for row in loader.next_batch(step) for _, d in row.documents}
        assert got == {stage_difficulty}, (step, got)
        seen.append(stage_difficulty)
    assert seen == sorted(seen)


def test_mixture_follows_the_weights(tokenizer):
    rng = random.Random(5)
    a = TextSource([{"text": _text(rng, 10)} for _ in range(30)], tokenizer, "instruct", "all")
    b = TextSource([{"text": _text(rng, 10)} for _ in range(30)], tokenizer, "instruct", "all")
    loader = BatchLoader([a, b], [3.0, 1.0], seq_len=64, rows_per_step=8, seed=0)
    counts = [0, 0]
    for step in range(30):
        for row in loader.next_batch(step):
            for s, _ in row.documents:
                counts[s] += 1
    share = counts[0] / sum(counts)
    assert 0.70 < share < 0.80, counts  # 0.75 expected; ~2000 draws give a standard deviation of ~0.01


def test_state_dict_resumes_the_stream_exactly(tokenizer):
    rng = random.Random(6)
    source = TextSource([{"text": _text(rng, rng.randint(1, 90))} for _ in range(25)], tokenizer, "instruct", "all")
    first = _loader([source])
    batches = [first.next_batch(s) for s in range(3)]
    state = first.state_dict()
    later = [first.next_batch(s) for s in range(3, 9)]  # crosses an epoch of the 25 documents
    again = _loader([source])
    again.load_state_dict(state)
    for step, rows in zip(range(3, 9), later):
        for x, y in zip(rows, again.next_batch(step)):
            assert torch.equal(x.input_ids, y.input_ids) and torch.equal(x.labels, y.labels)
    assert batches and all(len(b) == 4 for b in batches)


def test_model_inputs_concatenate_a_ranks_rows(tokenizer):
    rng = random.Random(7)
    source = TextSource([{"text": _text(rng, rng.randint(1, 30))} for _ in range(20)], tokenizer, "instruct", "all")
    rows = _loader([source])
    batch = rows.next_batch(0)
    mine = rank_rows(batch, 1, 2)
    assert mine == batch[2:4]
    packed = model_inputs(mine, document_mask=True)
    total = sum(r.num_tokens for r in mine)
    assert packed["input_ids"].shape == (1, total) and int(packed["cu_seqlens"][-1]) == total
    assert packed["cu_seqlens"].dtype == torch.int32
    rowwise = model_inputs(mine, document_mask=False)
    assert rowwise["input_ids"].shape == (2, 48) and "cu_seqlens" not in rowwise
    with pytest.raises(ValueError, match="rows"):
        rank_rows(batch, 0, 3)
