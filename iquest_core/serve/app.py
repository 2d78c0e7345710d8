"""The ASGI application of `iquest serve` (Starlette): /v1/chat/completions, /v1/completions, /v1/models,
/health. Streaming is server-sent events (`data: {chunk}` ... `data: [DONE]`), as the OpenAI API.

Every request runs on the shared `BatchEngine` (continuous batching); the app only renders prompts,
turns tokens into text (held back while it could still become a stop string or a tool-call tag) and
answers. Whatever goes wrong answers an API error object, never a dropped connection: a bad request
400, an unknown model or route 404, a wrong method 405, a failure inside generation 500.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from iquest_core.serve.engine import BatchEngine
from iquest_core.serve.protocol import (TOOL_CALL_OPEN, ApiError, GenerationSpec, chat_prompt, completion_prompt,
                                        cut_at_stop, safe_prefix, sampling_spec, split_tool_calls)


class _Choice:
    """One generated sequence: tokens from the engine thread to text deltas on the event loop. Choice
    `index` of a seeded request samples with seed + index (n choices differ, each reproducible)."""

    def __init__(self, engine: BatchEngine, spec: GenerationSpec, tokenizer, index: int = 0) -> None:
        loop, self.queue = asyncio.get_running_loop(), asyncio.Queue()
        self.spec, self.tokenizer, self.ids, self.text, self.sent = spec, tokenizer, [], "", 0
        params = spec.params if spec.params.seed is None else replace(spec.params, seed=spec.params.seed + index)
        self.ticket = engine.submit(spec.prompt, params,
                                    lambda token, finish: loop.call_soon_threadsafe(self.queue.put_nowait,
                                                                                    (token, finish)))

    async def deltas(self) -> AsyncIterator[tuple[str, str | None]]:
        """(new visible text, None) while generating, then (the rest, finish_reason) once."""
        markers = self.spec.stop + ([TOOL_CALL_OPEN] if self.spec.tools else [])
        try:
            while True:
                token, finish = await self.queue.get()
                if token is None:
                    break
                self.ids.append(token)
                self.text, stopped = cut_at_stop(self.tokenizer.decode(self.ids), self.spec.stop)
                if stopped:
                    self.ticket.cancel()
                    finish = "stop"
                    break
                visible = self.text.split(TOOL_CALL_OPEN)[0] if self.spec.tools else self.text
                visible = safe_prefix(visible, markers)
                if len(visible) > self.sent:
                    yield visible[self.sent:], None
                    self.sent = len(visible)
        finally:
            self.ticket.cancel()
        if finish.startswith("error"):
            raise ApiError(500, f"generation failed: {finish}", kind="server_error")
        yield self.text[self.sent:], {"cancelled": "stop"}.get(finish, finish)

    async def result(self) -> tuple[str, str]:
        async for _, finish in self.deltas():
            if finish:
                return self.text, finish
        raise AssertionError("deltas() ends with a finish")


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _chat_message(text: str, finish: str, tools: bool) -> tuple[dict[str, Any], str]:
    content, calls = split_tool_calls(text) if tools else (text, [])
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
        finish = "tool_calls"
    return message, finish


def _sse(chunks: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        try:
            async for chunk in chunks:
                yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
        except ApiError as error:
            yield f"data: {json.dumps(error.body())}\n\n"
        yield "data: [DONE]\n\n"
    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def create_app(engine: BatchEngine, tokenizer, model_name: str) -> Starlette:
    """The app serving `engine`'s model as `model_name` with `tokenizer` (a CodeTokenizer)."""
    created = int(time.time())

    async def read_body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ApiError(400, f"the request body is not JSON ({error})") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        if body.get("model") not in (None, model_name):
            raise ApiError(404, f"model: {body.get('model')!r} is not served here (serving {model_name!r})",
                           "model", kind="not_found_error")
        return body

    def header(kind: str, prefix: str) -> dict[str, Any]:
        return {"id": f"{prefix}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()), "model": model_name}

    async def chat(request: Request):
        body = await read_body(request)
        prompt, tools = chat_prompt(body, tokenizer)
        spec = sampling_spec(body, prompt, engine.context_length, tools=tools)
        choices = [_Choice(engine, spec, tokenizer, i) for i in range(spec.n)]
        if spec.stream:
            return _sse(_chat_chunks(choices[0], header("chat.completion.chunk", "chatcmpl"), tools))
        results = await asyncio.gather(*(c.result() for c in choices))
        out = header("chat.completion", "chatcmpl")
        out["choices"] = []
        for i, (text, finish) in enumerate(results):
            message, finish = _chat_message(text, finish, tools)
            out["choices"].append({"index": i, "message": message, "finish_reason": finish, "logprobs": None})
        out["usage"] = _usage(len(prompt), sum(len(c.ids) for c in choices))
        return JSONResponse(out)

    async def completions(request: Request):
        body = await read_body(request)
        prompt = completion_prompt(body, tokenizer)
        spec = sampling_spec(body, prompt, engine.context_length)
        choices = [_Choice(engine, spec, tokenizer, i) for i in range(spec.n)]
        if spec.stream:
            return _sse(_completion_chunks(choices[0], header("text_completion", "cmpl")))
        results = await asyncio.gather(*(c.result() for c in choices))
        out = header("text_completion", "cmpl")
        out["choices"] = [{"index": i, "text": text, "finish_reason": finish, "logprobs": None}
                          for i, (text, finish) in enumerate(results)]
        out["usage"] = _usage(len(prompt), sum(len(c.ids) for c in choices))
        return JSONResponse(out)

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": [{"id": model_name, "object": "model", "created": created,
                                                         "owned_by": "iquest-core"}]})

    async def health(request: Request):
        return JSONResponse({"status": "ok"})

    async def api_error(request: Request, error: ApiError):
        return JSONResponse(error.body(), status_code=error.status)

    async def http_error(request: Request, error: HTTPException):
        kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
        return JSONResponse(ApiError(error.status_code, f"{request.method} {request.url.path}: {error.detail}",
                                     kind=kind).body(), status_code=error.status_code)

    async def server_error(request: Request, error: Exception):
        return JSONResponse(ApiError(500, f"{type(error).__name__}: {error}", kind="server_error").body(),
                            status_code=500)

    routes = [Route("/v1/chat/completions", chat, methods=["POST"]),
              Route("/v1/completions", completions, methods=["POST"]),
              Route("/v1/models", models, methods=["GET"]), Route("/health", health, methods=["GET"])]
    return Starlette(routes=routes, exception_handlers={ApiError: api_error, HTTPException: http_error,
                                                         Exception: server_error})


async def _chat_chunks(choice: _Choice, head: dict[str, Any], tools: bool) -> AsyncIterator[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

    yield chunk({"role": "assistant", "content": ""})
    async for text, finish in choice.deltas():
        if finish is None:
            yield chunk({"content": text})
            continue
        message, finish = _chat_message(choice.text, finish, tools)
        rest = (message["content"] or "")[choice.sent:]
        if rest:
            yield chunk({"content": rest})
        calls = [{"index": i, **call} for i, call in enumerate(message.get("tool_calls", []))]
        if calls:
            yield chunk({"tool_calls": calls})
        yield chunk({}, finish)


async def _completion_chunks(choice: _Choice, head: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    async for text, finish in choice.deltas():
        yield {**head, "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}]}
