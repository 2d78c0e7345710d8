"""`iquest serve HF_DIR [--port P]`: the package's model behind the OpenAI API (uvicorn + Starlette).

    iquest serve models/my-loopcoder --port 8000 [--host 127.0.0.1] [--model-name NAME] [--max-batch 16]
    curl -s localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \\
         -d '{"model": "my-loopcoder", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 32}'

HF_DIR is an `iquest export` directory (config.json, model.safetensors, tokenizer.json). Generation
stops at the config's eos ids and at <|im_end|> / <|endoftext|>. `EmbeddedServer` runs the same server
on a free local port inside the current process (the default endpoint of `iquest synth`);
`BackgroundServer` does that for any ASGI app.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import torch
import uvicorn

from iquest_core.command_line import CommandParser
from iquest_core.data.tokenizer import load_tokenizer
from iquest_core.model import LoopCoderForCausalLM
from iquest_core.serve.app import create_app
from iquest_core.serve.engine import BatchEngine

STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")


def load_served_model(hf_dir: str | Path, *, max_batch: int = 16, model_name: str | None = None):
    """(Starlette app, BatchEngine, model name) for the export directory hf_dir."""
    hf_dir = Path(hf_dir)
    if not (hf_dir / "config.json").is_file():
        raise ValueError(f"HF_DIR: expected an exported model directory with config.json, got {hf_dir}")
    tokenizer = load_tokenizer(hf_dir)
    model = LoopCoderForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(f"HF_DIR: the tokenizer has {tokenizer.vocab_size} tokens, the model only "
                         f"{model.config.vocab_size}")
    stop_ids = set(model.config.eos_token_ids)
    for token in STOP_TOKENS:
        try:
            stop_ids.add(tokenizer.special_id(token))
        except ValueError:
            pass
    engine = BatchEngine(model, stop_ids=sorted(stop_ids), max_batch=max_batch)
    name = model_name or hf_dir.resolve().name
    return create_app(engine, tokenizer, name), engine, name


class BackgroundServer:
    """An ASGI app served by uvicorn on 127.0.0.1 at a free port in a background thread; `url` is its /v1
    base URL. `on_exit` runs after the server has stopped."""

    def __init__(self, app, on_exit=None) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/v1"
        self._on_exit = on_exit
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def __enter__(self):
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the embedded server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        if self._on_exit is not None:
            self._on_exit()
        self._socket.close()


class EmbeddedServer(BackgroundServer):
    """`iquest serve` of the export hf_dir in the current process (BackgroundServer); the engine closes
    with it."""

    def __init__(self, hf_dir: str | Path, *, max_batch: int = 16, model_name: str | None = None) -> None:
        app, self.engine, self.model_name = load_served_model(hf_dir, max_batch=max_batch, model_name=model_name)
        super().__init__(app, on_exit=self.engine.close)


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="iquest serve", description=__doc__.split("\n")[0])
    parser.add_argument("hf_dir", help="an exported model directory (config.json, model.safetensors, tokenizer.json)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--model-name", default=None, help="the id clients ask for (default: HF_DIR's name)")
    parser.add_argument("--max-batch", type=int, default=16, help="most requests decoded together")
    args = parser.parse_args(argv)
    if not 0 <= args.port < 65536:
        raise ValueError(f"--port: expected 0..65535, got {args.port}")
    app, engine, name = load_served_model(args.hf_dir, max_batch=args.max_batch, model_name=args.model_name)
    print(f"iquest serve: {name} on http://{args.host}:{args.port}/v1", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        engine.close()
    return 0
