"""Tool calls through the API: the request's tools reach the prompt in the package's template, and an
assistant text with `<tool_call>` blocks comes back as the API's tool_calls (streamed or not). The
engine is scripted (a random model never writes a tool call); the app, tokenizer and template are real."""

import json
import subprocess
import threading

import openai
import pytest
from starlette.testclient import TestClient

from iquest_core.data.tokenizer import load_tokenizer
from iquest_core.serve.app import create_app
from iquest_core.serve.protocol import split_tool_calls
from iquest_core.serve.server import BackgroundServer

CALL = {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}
REPLY = f'Let me check.\n<tool_call>\n{json.dumps(CALL)}\n</tool_call>'
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


class ScriptedEngine:
    """Answers every request with the tokens of `reply`, from another thread, and keeps the prompts."""

    context_length = 4096

    def __init__(self, tokenizer, reply: str, finish: str = "stop") -> None:
        self.tokens, self.prompts, self.finish = tokenizer.encode(reply), [], finish

    def submit(self, prompt, params, emit):
        self.prompts.append(prompt)

        def run():
            for token in self.tokens[:params.max_tokens]:
                emit(token, None)
            emit(None, self.finish)
        threading.Thread(target=run).start()
        return type("Ticket", (), {"cancel": lambda self: None})()


@pytest.fixture
def scripted(tiny_export):
    tokenizer = load_tokenizer(tiny_export)
    engine = ScriptedEngine(tokenizer, REPLY)
    http = TestClient(create_app(engine, tokenizer, "scripted"), base_url="http://test")
    return engine, tokenizer, openai.OpenAI(base_url="http://test/v1", api_key="x", http_client=http)


def test_tool_call_comes_back_as_tool_calls(scripted):
    engine, tokenizer, client = scripted
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    answer = client.chat.completions.create(model="scripted", messages=messages, tools=TOOLS)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me check."
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == CALL["arguments"]
    prompt = tokenizer.decode(engine.prompts[0])
    assert "<tools>" in prompt and '"get_weather"' in prompt and prompt.endswith("<|im_start|>assistant\n")


def test_streamed_tool_call_never_leaks_the_tag(scripted):
    _, _, client = scripted
    chunks = list(client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "?"}],
                                                 tools=TOOLS, stream=True))
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert content == "Let me check.\n" and "<tool" not in content
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [("get_weather", CALL["arguments"])]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_without_tools_the_text_is_content(scripted):
    engine, tokenizer, client = scripted
    answer = client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "?"}])
    assert answer.choices[0].message.content == REPLY and answer.choices[0].message.tool_calls is None
    assert "<tools>" not in tokenizer.decode(engine.prompts[0])


def test_earlier_tool_calls_and_results_render_in_the_template(scripted):
    engine, tokenizer, client = scripted
    messages = [{"role": "user", "content": "?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function",
                     "function": {"name": "get_weather", "arguments": json.dumps(CALL["arguments"])}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]
    client.chat.completions.create(model="scripted", messages=messages, tools=TOOLS)
    prompt = tokenizer.decode(engine.prompts[0])
    assert f"<tool_call>\n{json.dumps(CALL)}\n</tool_call>" in prompt
    assert "<tool_response>\nsunny\n</tool_response>" in prompt


def test_malformed_tool_call_stays_content():
    text = "x <tool_call>\n{not json}\n</tool_call>"
    assert split_tool_calls(text) == (text, [])


def test_curl_gets_tool_calls_streamed_and_not(tiny_export):
    tokenizer = load_tokenizer(tiny_export)
    body = {"messages": [{"role": "user", "content": "Weather?"}], "tools": TOOLS}
    with BackgroundServer(create_app(ScriptedEngine(tokenizer, REPLY), tokenizer, "scripted")) as server:
        def curl(payload):
            return subprocess.run(["curl", "-sS", "-N", f"{server.url}/chat/completions", "-H",
                                   "Content-Type: application/json", "-d", json.dumps(payload)],
                                  capture_output=True, text=True, timeout=60, check=True).stdout
        answer = json.loads(curl(body))
        events = [e[len("data: "):] for e in curl({**body, "stream": True}).strip().split("\n\n")]
    call = answer["choices"][0]["message"]["tool_calls"][0]["function"]
    assert answer["choices"][0]["finish_reason"] == "tool_calls" and json.loads(call["arguments"]) == CALL["arguments"]
    chunks = [json.loads(e) for e in events[:-1]]
    streamed = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert events[-1] == "[DONE]" and streamed[0]["function"]["name"] == "get_weather"


def test_a_failure_inside_generation_is_a_500_error_object(tiny_export):
    tokenizer = load_tokenizer(tiny_export)
    engine = ScriptedEngine(tokenizer, "partial", finish="error: RuntimeError: boom")
    http = TestClient(create_app(engine, tokenizer, "scripted"), base_url="http://test")
    response = http.post("/v1/completions", json={"prompt": "x"})
    assert response.status_code == 500 and "boom" in response.json()["error"]["message"]
    stream = http.post("/v1/completions", json={"prompt": "x", "stream": True}).text
    assert '"code": 500' in stream and stream.strip().endswith("data: [DONE]")
