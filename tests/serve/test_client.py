import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from iquest_core.serve.client import ChatClient, EndpointError
from tests.serve.stub import StubEndpoint

USER = [{"role": "user", "content": "hi"}]


def client(url: str, **kw) -> ChatClient:
    return ChatClient(url, "stub", **{"backoff_s": 0.01, "max_retries": 2, "timeout_s": 5, **kw})


def test_chat_complete_models_round_trip():
    with StubEndpoint(["ok"]) as stub, client(stub.url, api_key="k") as c:
        assert c.chat(USER, max_tokens=4) == "echo: hi"
        assert c.complete("def f", max_tokens=4) == "echo: def f"
        assert c.models() == ["stub"]
    (path, payload), (path2, _) = stub.requests
    assert path == "/v1/chat/completions" and payload == {"model": "stub", "messages": USER, "max_tokens": 4}
    assert path2 == "/v1/completions"


@pytest.mark.parametrize("failure", [500, 503, 429, "malformed", "no-choices"])
def test_transient_failures_are_retried_then_succeed(failure):
    with StubEndpoint([failure, failure, "ok"]) as stub, client(stub.url) as c:
        assert c.chat(USER) == "echo: hi"
    assert len(stub.requests) == 3


@pytest.mark.parametrize("failure, cause", [(500, "HTTP 500: scripted 500"), ("malformed", "malformed JSON"),
                                            ("no-choices", "malformed response")])
def test_persistent_failure_names_the_request_after_all_retries(failure, cause):
    with StubEndpoint([failure]) as stub, client(stub.url) as c:
        with pytest.raises(EndpointError) as caught:
            c.chat(USER, request="item 7")
    assert len(stub.requests) == 3
    error = caught.value
    assert error.attempts == 3 and error.request == "item 7" and error.url == stub.url + "/chat/completions"
    assert cause in str(error) and "item 7" in str(error) and stub.url in str(error)


def test_client_error_is_not_retried():
    with StubEndpoint([400]) as stub, client(stub.url) as c, pytest.raises(EndpointError, match="HTTP 400"):
        c.chat(USER)
    assert len(stub.requests) == 1


def test_refused_connection_is_retried_then_reported():
    with StubEndpoint(["ok"]) as stub:
        url = stub.url
    with client(url) as c, pytest.raises(EndpointError, match=r"request #1 .* 3 attempt\(s\): connection failed"):
        c.chat(USER)


def test_timeout_is_retried_then_reported():
    with StubEndpoint(["sleep"], sleep_s=1.0) as stub, client(stub.url, timeout_s=0.1, max_retries=1) as c:
        with pytest.raises(EndpointError, match="timed out") as caught:
            c.complete("x")
    assert caught.value.attempts == 2 and len(stub.requests) == 2


def test_chat_many_keeps_order_and_bounds_concurrency():
    conversations = [[{"role": "user", "content": str(i)}] for i in range(12)]
    with StubEndpoint(["sleep"], sleep_s=0.05) as stub, client(stub.url, concurrency=3) as c:
        start = time.perf_counter()
        answers = c.chat_many(conversations)
        elapsed = time.perf_counter() - start
    assert answers == [f"echo: {i}" for i in range(12)]
    assert stub.max_in_flight == 3
    assert elapsed < 12 * 0.05  # control for the bound: requests did overlap


def test_concurrency_limit_holds_across_caller_threads():
    with StubEndpoint(["sleep"], sleep_s=0.05) as stub, client(stub.url, concurrency=2) as c:
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(lambda i: c.complete(str(i)), range(8))) == [f"echo: {i}" for i in range(8)]
    assert stub.max_in_flight == 2


def test_chat_many_names_the_failed_item():
    conversations = [USER] * 3
    with StubEndpoint(["ok", "ok", 400]) as stub, client(stub.url, concurrency=1) as c:
        results = c.chat_many(conversations, errors="return")
    assert results[:2] == ["echo: hi", "echo: hi"]
    assert isinstance(results[2], EndpointError) and results[2].request == "chat_many item 2"
    with StubEndpoint([400]) as stub, client(stub.url) as c, pytest.raises(EndpointError, match="chat_many item 0"):
        c.chat_many(conversations)


@pytest.mark.parametrize("kwargs, name", [({"endpoint": "localhost:8000"}, "endpoint"), ({"model": ""}, "model"),
                                          ({"timeout_s": 0}, "timeout_s"), ({"max_retries": -1}, "max_retries"),
                                          ({"concurrency": 0}, "concurrency")])
def test_bad_arguments_name_themselves(kwargs, name):
    args = {"endpoint": "http://x/v1", "model": "m", **kwargs}
    with pytest.raises(ValueError, match=f"^{name}:"):
        ChatClient(args.pop("endpoint"), args.pop("model"), **args)
