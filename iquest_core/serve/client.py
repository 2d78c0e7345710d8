"""One client for every OpenAI-compatible endpoint: `iquest serve`, vLLM, SGLang or a provider.

    client = ChatClient("http://127.0.0.1:8000/v1", "loopcoder", timeout_s=60, max_retries=4, concurrency=8)
    client.chat([{"role": "user", "content": "hi"}], max_tokens=64)        # -> the assistant's text
    client.chat_many([messages_a, messages_b], temperature=0.8)            # -> texts, in order
    client.complete("def add(a, b):", max_tokens=32)                      # -> the completion's text
    client.chat_message(messages, tools=[...])                            # -> the whole message (tool calls)

`endpoint` is the API's base URL, as the `openai` package's `base_url` (requests go to
`{endpoint}/chat/completions`, `{endpoint}/completions`, `{endpoint}/models`). Plain HTTP (httpx).

Retried with exponential backoff (backoff_s * 2**attempt, up to max_retries more attempts): a refused or
dropped connection, a timeout, HTTP 408/409/429/5xx, a body that is not JSON or lacks the choices. Not
retried: other 4xx (the request itself is wrong; retrying cannot help). Either way the failure is an
`EndpointError` naming the URL, the request (its position in `chat_many`, else the client's running
request number), the attempts made and the last cause. At most `concurrency` requests are in flight at
once per client, whichever threads call it.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

RETRIED_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class EndpointError(RuntimeError):
    """A request that failed for good: `url`, `request` (which one), `attempts`, `cause` (the last failure)."""

    def __init__(self, url: str, request: str, attempts: int, cause: str) -> None:
        super().__init__(f"{request} to {url} failed after {attempts} attempt(s): {cause}")
        self.url, self.request, self.attempts, self.cause = url, request, attempts, cause


class _Retryable(Exception):
    """A failure worth another attempt."""


class _Final(Exception):
    """A failure another attempt cannot fix (the request itself is refused)."""


def _positive(name: str, value: Any, *, integer: bool, minimum: float) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
        raise ValueError(f"{name}: expected {'an int' if integer else 'a number'} >= {minimum}, got {value!r}")


class ChatClient:
    """An OpenAI-compatible endpoint with retries, timeouts and a concurrency limit (module docstring)."""

    def __init__(self, endpoint: str, model: str, *, api_key: str | None = None, timeout_s: float = 60,
                 max_retries: int = 4, concurrency: int = 8, backoff_s: float = 0.5) -> None:
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint: expected an http(s) base URL such as http://127.0.0.1:8000/v1, "
                             f"got {endpoint!r}")
        if not isinstance(model, str) or not model:
            raise ValueError(f"model: expected a non-empty model name, got {model!r}")
        _positive("timeout_s", timeout_s, integer=False, minimum=1e-3)
        _positive("max_retries", max_retries, integer=True, minimum=0)
        _positive("concurrency", concurrency, integer=True, minimum=1)
        _positive("backoff_s", backoff_s, integer=False, minimum=0)
        self.endpoint, self.model = endpoint.rstrip("/"), model
        self.max_retries, self.concurrency, self.backoff_s = max_retries, concurrency, backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=timeout_s, headers=headers,
                                  limits=httpx.Limits(max_connections=None, max_keepalive_connections=concurrency))
        self._slots = threading.BoundedSemaphore(concurrency)
        self._numbers = itertools.count(1)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chat_message(self, messages: list[dict[str, Any]], *, request: str | None = None,
                     **params: Any) -> dict[str, Any]:
        """The first choice's message ({"role", "content", maybe "tool_calls"}) for `messages`."""
        payload = {"model": self.model, "messages": messages, **params}
        return self._send("POST", "/chat/completions", payload, request, _first_message)

    def chat(self, messages: list[dict[str, Any]], *, request: str | None = None, **params: Any) -> str:
        """The assistant's text for `messages` ("" when it only called tools)."""
        return self.chat_message(messages, request=request, **params).get("content") or ""

    def chat_many(self, conversations: list[list[dict[str, Any]]], *, errors: str = "raise",
                  **params: Any) -> list[Any]:
        """`chat` for each conversation, at most `concurrency` at once; results in input order. errors="raise"
        raises the EndpointError of the first failed item (after all have finished); errors="return" puts
        the EndpointError in that item's place."""
        if errors not in ("raise", "return"):
            raise ValueError(f"errors: expected 'raise' or 'return', got {errors!r}")

        def one(index: int) -> Any:
            try:
                return self.chat(conversations[index], request=f"chat_many item {index}", **params)
            except EndpointError as error:
                return error

        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(conversations)))) as pool:
            results = list(pool.map(one, range(len(conversations))))
        failed = [r for r in results if isinstance(r, EndpointError)]
        if failed and errors == "raise":
            raise failed[0]
        return results

    def complete(self, prompt: str, *, request: str | None = None, **params: Any) -> str:
        """The first choice's text for a plain completion of `prompt`."""
        payload = {"model": self.model, "prompt": prompt, **params}
        return self._send("POST", "/completions", payload, request, lambda body: body["choices"][0]["text"])

    def models(self) -> list[str]:
        """The ids the endpoint serves."""
        return self._send("GET", "/models", None, None, lambda body: [m["id"] for m in body["data"]])

    def _send(self, method: str, path: str, payload: dict[str, Any] | None, request: str | None,
              extract: Callable[[Any], Any]) -> Any:
        """extract(the response's JSON body), retried as the module docstring says."""
        url = self.endpoint + path
        request = request or f"request #{next(self._numbers)}"
        cause = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                with self._slots:
                    response = self._http.request(method, url, json=payload)
                body = _json_body(response)
                try:
                    return extract(body)
                except (KeyError, IndexError, TypeError):
                    raise _Retryable(f"malformed response: {str(body)[:200]!r}") from None
            except _Retryable as error:
                cause = str(error)
            except httpx.TimeoutException as error:
                cause = f"timed out ({type(error).__name__})"
            except httpx.TransportError as error:
                cause = f"connection failed ({type(error).__name__}: {error})"
            except _Final as error:
                raise EndpointError(url, request, attempt + 1, str(error)) from None
        raise EndpointError(url, request, self.max_retries + 1, cause)


def _first_message(body: Any) -> dict[str, Any]:
    message = body["choices"][0]["message"]
    if not isinstance(message, dict):
        raise TypeError("message is not an object")
    return message


def _json_body(response: httpx.Response) -> Any:
    """The JSON body of a successful response; _Retryable or _Final otherwise."""
    if response.status_code != 200:
        detail = _error_message(response)
        kind = _Retryable if response.status_code in RETRIED_STATUSES else _Final
        raise kind(f"HTTP {response.status_code}: {detail}")
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _Retryable(f"malformed JSON in the response: {response.text[:200]!r}") from None
    return body


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return response.text[:300] or response.reason_phrase
