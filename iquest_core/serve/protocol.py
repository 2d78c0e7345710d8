"""The OpenAI API as `iquest serve` speaks it: request checks, prompts in the package's chat template,
tool calls in its `<tool_call>` format, and the error objects.

Prompts: a chat is rendered with `iquest_core.data.chat` (ChatML) followed by `<|im_start|>assistant\\n`;
tools, when given (and tool_choice is not "none"), are described in a system turn placed first. An
assistant turn calls tools as `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>` blocks
(the training format); `split_tool_calls` turns them into the API's `tool_calls`.

Every refusal is an `ApiError` (status, message, param) whose `body()` is the API's error object
`{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from iquest_core.data.chat import ROLES, render_chat
from iquest_core.serve.engine import SamplingParams

TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
TOOL_CALL_OPEN = "<tool_call>"
MAX_CHOICES = 16


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.status}}


@dataclass
class GenerationSpec:
    """What one API request asks the engine for."""

    prompt: list[int]
    params: SamplingParams
    n: int
    stream: bool
    stop: list[str]
    tools: bool


def _number(body: dict, name: str, default: float, low: float, high: float, *, integer: bool = False) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ApiError(400, f"{name}: expected {kind} in [{low}, {high}], got {value!r}", name)
    return value


def sampling_spec(body: dict[str, Any], prompt: list[int], context: int, *, tools: bool = False) -> GenerationSpec:
    """The engine request for an API body (chat or completion), every field checked."""
    room = context - len(prompt)
    if room < 1:
        raise ApiError(400, f"the prompt has {len(prompt)} tokens; the model's context is {context}", "messages")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    max_tokens = _number({"max_tokens": max_tokens}, "max_tokens", min(256, room), 1, room, integer=True)
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
        raise ApiError(400, f"stop: expected a string or a list of up to 4 non-empty strings, got {stop!r}", "stop")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, f"stream: expected a boolean, got {stream!r}", "stream")
    n = _number(body, "n", 1, 1, 1 if stream else MAX_CHOICES, integer=True)
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ApiError(400, f"seed: expected an integer, got {seed!r}", "seed")
    params = SamplingParams(max_tokens=max_tokens, temperature=float(_number(body, "temperature", 1.0, 0, 2)),
                            top_p=float(_number(body, "top_p", 1.0, 1e-9, 1)),
                            top_k=_number(body, "top_k", 0, 0, 1 << 30, integer=True), seed=seed)
    return GenerationSpec(prompt, params, n, stream, stop, tools)


def _openai_tool_calls(calls: Any, where: str) -> list[dict[str, Any]]:
    """OpenAI tool_calls ({"function": {"name", "arguments": JSON text}}) -> the template's ({"name", "arguments"})."""
    if not isinstance(calls, list):
        raise ApiError(400, f"{where}: expected a list", where)
    out = []
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise ApiError(400, f"{where}[{i}]: expected {{'function': {{'name', 'arguments'}}}}", where)
        arguments = function.get("arguments") or "{}"
        try:
            arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
        except json.JSONDecodeError:
            raise ApiError(400, f"{where}[{i}].function.arguments: not JSON", where) from None
        out.append({"name": function["name"], "arguments": arguments})
    return out


def tool_prompt(tools: list[dict[str, Any]]) -> str:
    """The system text that offers `tools` (OpenAI function specs) in the template's tool-call format."""
    specs = "\n".join(json.dumps(t.get("function", t), ensure_ascii=False) for t in tools)
    return ("# Tools\n\nYou may call one or more functions. The available functions:\n<tools>\n"
            f"{specs}\n</tools>\n\nTo call a function, write\n<tool_call>\n"
            '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')


def chat_prompt(body: dict[str, Any], tokenizer) -> tuple[list[int], bool]:
    """Token ids of a chat request's prompt and whether tools are offered."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: expected a non-empty list of {role, content}", "messages")
    converted = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in (*ROLES, "developer"):
            raise ApiError(400, f"messages[{i}].role: expected one of {ROLES}", "messages")
        content = m.get("content") or ""
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise ApiError(400, f"messages[{i}].content: expected a string", "messages")
        role = "system" if m["role"] == "developer" else m["role"]
        record = {"role": role, "content": content}
        if m.get("tool_calls"):
            record["tool_calls"] = _openai_tool_calls(m["tool_calls"], f"messages[{i}].tool_calls")
        converted.append(record)
    tools = body.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise ApiError(400, "tools: expected a list of function specs", "tools")
    offered = bool(tools) and body.get("tool_choice", "auto") != "none"
    if offered:
        converted.insert(0, {"role": "system", "content": tool_prompt(tools)})
    ids, _ = render_chat(converted, tokenizer)
    return ids + [tokenizer.special_id("<|im_start|>")] + tokenizer.encode("assistant\n"), offered


def completion_prompt(body: dict[str, Any], tokenizer) -> list[int]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise ApiError(400, f"prompt: expected a non-empty string, got {str(prompt)[:60]!r}", "prompt")
    return tokenizer.encode(prompt)


def split_tool_calls(text: str) -> tuple[str | None, list[dict[str, Any]]]:
    """(content before the calls or None, the API's tool_calls) of an assistant text; blocks whose JSON
    does not parse stay in the content."""
    calls, kept = [], text
    for match in TOOL_CALL.finditer(text):
        try:
            call = json.loads(match.group(1))
        except json.JSONDecodeError:
            continue
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            continue
        calls.append({"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                      "function": {"name": call["name"],
                                   "arguments": json.dumps(call.get("arguments", {}), ensure_ascii=False)}})
        kept = kept.replace(match.group(0), "")
    return (kept.strip() or None) if calls else text, calls


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """text up to the first stop string (and whether one occurred)."""
    cuts = [text.find(s) for s in stop if s in text]
    return (text[:min(cuts)], True) if cuts else (text, False)


def safe_prefix(text: str, markers: list[str]) -> str:
    """The longest prefix of text that can be streamed: it holds back an incomplete UTF-8 character and any
    tail that could still grow into one of `markers` (stop strings, the tool-call tag)."""
    end = len(text.rstrip("\ufffd"))
    for marker in markers:
        for size in range(min(len(marker) - 1, end), 0, -1):
            if text[end - size:end] == marker[:size]:
                end -= size
                break
    return text[:end]
