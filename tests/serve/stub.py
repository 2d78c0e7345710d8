"""A scripted stand-in for an OpenAI-compatible endpoint: each request takes the next behaviour of the
script (the last one repeats) and is recorded."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubEndpoint:
    """Behaviours: "ok" (echoes the last user message), "malformed" (not JSON), "no-choices", "sleep"
    (answers after `sleep_s`), or an int HTTP status with an API error object."""

    def __init__(self, script: list, sleep_s: float = 1.0) -> None:
        self.script, self.sleep_s, self.requests = list(script), sleep_s, []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._reply(200, {"object": "list", "data": [{"id": "stub", "object": "model"}]})

            def do_POST(self) -> None:
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub._lock:
                    behaviour = stub.script[min(len(stub.requests), len(stub.script) - 1)]
                    stub.requests.append((self.path, payload))
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    self._answer(behaviour, payload)
                finally:
                    with stub._lock:
                        stub.in_flight -= 1

            def _answer(self, behaviour, payload: dict) -> None:
                if behaviour == "sleep":
                    time.sleep(stub.sleep_s)
                    behaviour = "ok"
                if behaviour == "malformed":
                    self._raw(200, b"{not json")
                elif behaviour == "no-choices":
                    self._reply(200, {"object": "chat.completion", "choices": []})
                elif isinstance(behaviour, int):
                    self._reply(behaviour, {"error": {"message": f"scripted {behaviour}", "type": "stub"}})
                elif self.path.endswith("/chat/completions"):
                    text = "echo: " + payload["messages"][-1]["content"]
                    self._reply(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})
                else:
                    self._reply(200, {"choices": [{"index": 0, "text": "echo: " + payload["prompt"]}]})

            def _reply(self, status: int, body: dict) -> None:
                self._raw(status, json.dumps(body).encode())

            def _raw(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> StubEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
