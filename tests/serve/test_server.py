"""`iquest serve` end to end on a tiny random export: the `openai` client and curl, streaming, batching,
greedy equality with model.generate, API error objects."""

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import torch

from iquest_core.data.tokenizer import load_tokenizer
from iquest_core.model import LoopCoderForCausalLM
from iquest_core.serve.protocol import completion_prompt
from iquest_core.serve.server import EmbeddedServer

CHAT = [{"role": "user", "content": "def add(a, b):"}]


@pytest.fixture(scope="module")
def server(tiny_export):
    with EmbeddedServer(tiny_export, max_batch=8) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)


def reference_text(export, prompt: str, max_tokens: int) -> str:
    """model.generate's greedy continuation of prompt, cut at the server's stop ids, as text."""
    tokenizer = load_tokenizer(export)
    model = LoopCoderForCausalLM.from_pretrained(export, dtype=torch.float32)
    ids = completion_prompt({"prompt": prompt}, tokenizer)
    stops = [tokenizer.special_id("<|im_end|>"), tokenizer.special_id("<|endoftext|>")]
    new = model.generate(torch.tensor([ids]), max_tokens, eos_token_id=stops)[0, len(ids):].tolist()
    return tokenizer.decode(new[:next((i for i, t in enumerate(new) if t in stops), len(new))])


PROMPTS = ["import os\n", "def add(a, b):", "class Tree:\n    def", "x = [1, 2"]


def test_greedy_completions_equal_model_generate(server, client, tiny_export):
    for prompt in PROMPTS:
        got = client.completions.create(model=server.model_name, prompt=prompt, max_tokens=24, temperature=0)
        assert got.choices[0].text == reference_text(tiny_export, prompt, 24)
        assert got.usage.prompt_tokens > 0 and got.choices[0].finish_reason in ("stop", "length")


def test_concurrent_requests_are_batched_and_unchanged(server, client, tiny_export):
    def ask(prompt):
        return client.completions.create(model=server.model_name, prompt=prompt, max_tokens=24,
                                         temperature=0).choices[0].text

    sequential = [ask(p) for p in PROMPTS * 2]
    before = server.engine.stats.max_rows
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(ask, PROMPTS * 2))
    assert concurrent == sequential
    assert before == 1 and server.engine.stats.max_rows > 1  # control: sequential calls never shared a step


def test_chat_stream_equals_non_stream(server, client):
    whole = client.chat.completions.create(model=server.model_name, messages=CHAT, max_tokens=20, temperature=0)
    chunks = list(client.chat.completions.create(model=server.model_name, messages=CHAT, max_tokens=20,
                                                 temperature=0, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == whole.choices[0].message.content and len(chunks) > 3
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_stop_string_and_n_choices(server, client):
    whole = client.completions.create(model=server.model_name, prompt="import os\n", max_tokens=24, temperature=0)
    text = whole.choices[0].text
    stop = text[5:8]
    cut = client.completions.create(model=server.model_name, prompt="import os\n", max_tokens=24, temperature=0,
                                    stop=[stop])
    assert cut.choices[0].text == text[:text.index(stop)] and cut.choices[0].finish_reason == "stop"
    sampled = client.completions.create(model=server.model_name, prompt="x", max_tokens=8, n=3, seed=1)
    again = client.completions.create(model=server.model_name, prompt="x", max_tokens=8, n=3, seed=1)
    assert [c.index for c in sampled.choices] == [0, 1, 2]
    assert [c.text for c in sampled.choices] == [c.text for c in again.choices]  # seeded: reproducible
    assert len({c.text for c in sampled.choices}) > 1  # choices differ


def test_curl_gets_completions_and_a_stream(server):
    def curl(path, body):
        return subprocess.run(["curl", "-sS", "-N", f"{server.url}{path}", "-H", "Content-Type: application/json",
                               "-d", json.dumps(body)], capture_output=True, text=True, timeout=60, check=True).stdout

    answer = json.loads(curl("/chat/completions", {"model": server.model_name, "messages": CHAT, "max_tokens": 8}))
    assert answer["object"] == "chat.completion" and answer["usage"]["completion_tokens"] <= 8
    events = curl("/completions", {"prompt": "def", "max_tokens": 8, "stream": True}).strip().split("\n\n")
    assert events[-1] == "data: [DONE]"
    assert all(json.loads(e[len("data: "):])["object"] == "text_completion" for e in events[:-1])


@pytest.mark.parametrize("body, status, param", [
    (b"{not json", 400, None),
    ({"messages": []}, 400, "messages"),
    ({"messages": [{"role": "robot", "content": "x"}]}, 400, "messages"),
    ({"messages": CHAT, "temperature": 5}, 400, "temperature"),
    ({"messages": CHAT, "max_tokens": 10 ** 9}, 400, "max_tokens"),
    ({"messages": CHAT, "stop": 3}, 400, "stop"),
    ({"messages": CHAT, "n": 2, "stream": True}, 400, "n"),
    ({"messages": CHAT, "model": "gpt-9"}, 404, "model"),
])
def test_bad_requests_get_error_objects(server, body, status, param):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(server.url + "/chat/completions", content=content, timeout=30)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["param"] == param and error["message"] and error["code"] == status
    assert httpx.get(server.url + "/models").json()["data"][0]["id"] == server.model_name  # still serving


def test_unknown_route_and_method_get_error_objects(server):
    assert httpx.get(server.url + "/nothing").json()["error"]["code"] == 404
    assert httpx.get(server.url + "/chat/completions").json()["error"]["code"] == 405


def test_serve_command_refuses_a_directory_without_a_model(tmp_path, capsys):
    from iquest_core.cli import main

    assert main(["serve", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("iquest serve: error: HF_DIR: expected an exported model directory") and "\n" not in err
