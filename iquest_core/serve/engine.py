"""Continuous batching: one thread decodes every running request together, one token per step.

    engine = BatchEngine(model, stop_ids=[eos, im_end], max_batch=16)
    ticket = engine.submit(prompt_ids, SamplingParams(max_tokens=64), emit)   # emit(token_id) per token,
    ticket.cancel()                                                          # then emit(None, finish)

A request joins the running batch at the next step after it arrives (its prompt is prefilled alone
into its own dual cache) and leaves it as soon as it ends, so a short request never waits for a long
one. Each decode step is one batched forward over all running rows (`row_batch.decode_step`): with
greedy decoding a request's tokens are exactly `model.generate`'s for it alone. A row ends at a stop
id (not emitted), at max_tokens, or when cancelled (a stop string seen by the caller, a client gone).
An error inside a step ends the rows of that step with finish "error"; the thread keeps serving.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from iquest_core.model.generation import sample_next
from iquest_core.serve.row_batch import decode_step, install_row_batching, prefill

Emit = Callable[[int | None, str | None], None]


@dataclass(frozen=True)
class SamplingParams:
    """max_tokens new tokens at most; temperature 0 is greedy; top_k 0 is no limit; seed makes sampling
    reproducible."""

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None


@dataclass
class Ticket:
    """A submitted request; `cancel()` ends it before its next token."""

    prompt: list[int]
    params: SamplingParams
    emit: Emit
    cache: object = None
    generated: list[int] = field(default_factory=list)
    generator: torch.Generator | None = None
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class EngineStats:
    decode_steps: int = 0
    decoded_rows: int = 0
    max_rows: int = 0


class BatchEngine:
    """The decode thread over one LoopCoderForCausalLM (module docstring)."""

    def __init__(self, model: torch.nn.Module, *, stop_ids: list[int], max_batch: int = 16) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch: expected an int >= 1, got {max_batch!r}")
        install_row_batching(model)
        self.model, self.stop_ids, self.max_batch = model.eval(), set(stop_ids), max_batch
        self.stats = EngineStats()
        self._waiting: deque[Ticket] = deque()
        self._running: list[Ticket] = []
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="iquest-serve-engine", daemon=True)
        self._thread.start()

    @property
    def context_length(self) -> int:
        return self.model.config.max_position_embeddings

    def submit(self, prompt: list[int], params: SamplingParams, emit: Emit) -> Ticket:
        """Queue a request; emit(token, None) is called from the engine thread for every new token, then
        emit(None, finish) once with finish "stop", "length", "cancelled" or "error: ..."."""
        if not prompt:
            raise ValueError("prompt: expected at least one token")
        if params.max_tokens < 1:
            raise ValueError(f"max_tokens: expected >= 1, got {params.max_tokens}")
        if len(prompt) + params.max_tokens > self.context_length:
            raise ValueError(f"max_tokens: the prompt ({len(prompt)} tokens) + max_tokens ({params.max_tokens}) "
                             f"exceeds the model's context of {self.context_length} tokens")
        ticket = Ticket(list(prompt), params, emit)
        if params.temperature > 0:
            ticket.generator = torch.Generator(device=self.model.lm_head.weight.device)
            if params.seed is None:
                ticket.generator.seed()
            else:
                ticket.generator.manual_seed(params.seed)
        with self._wake:
            if self._closed:
                raise RuntimeError("the engine is closed")
            self._waiting.append(ticket)
            self._wake.notify()
        return ticket

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    def _serve(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self._waiting and not self._running:
                    self._wake.wait()
                if self._closed:
                    break
                arrived = [self._waiting.popleft() for _ in range(min(len(self._waiting),
                                                                       self.max_batch - len(self._running)))]
            for ticket in arrived:
                self._guarded([ticket], lambda: self._admit(ticket))
            for ticket in [t for t in self._running if t.cancelled]:
                self._ended(ticket)
            if self._running:
                self._guarded(self._running, self._step)
        for ticket in [*self._running, *self._waiting]:
            ticket.emit(None, "cancelled")

    def _guarded(self, tickets: list[Ticket], work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as error:  # noqa: BLE001 - one request's failure must not stop the server
            for ticket in tickets:
                if ticket in self._running:
                    self._running.remove(ticket)
                ticket.emit(None, f"error: {type(error).__name__}: {error}")

    def _admit(self, ticket: Ticket) -> None:
        if self._ended(ticket):
            return
        ticket.cache, logits = prefill(self.model, ticket.prompt)
        self._running.append(ticket)
        self._take(ticket, logits[None])

    def _step(self) -> None:
        rows = list(self._running)
        logits = decode_step(self.model, [t.generated[-1] for t in rows], [t.cache for t in rows])
        self.stats.decode_steps += 1
        self.stats.decoded_rows += len(rows)
        self.stats.max_rows = max(self.stats.max_rows, len(rows))
        for b, ticket in enumerate(rows):
            self._take(ticket, logits[b:b + 1])

    def _take(self, ticket: Ticket, logits: torch.Tensor) -> None:
        """Choose the next token of ticket from logits (1, vocab); emit it or end the row."""
        p = ticket.params
        if p.temperature > 0:
            token = int(sample_next(logits, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k,
                                    generator=ticket.generator)[0])
        else:
            token = int(logits[0].argmax())
        if token in self.stop_ids:
            return self._finish(ticket, "stop")
        ticket.generated.append(token)
        ticket.emit(token, None)
        if len(ticket.generated) >= p.max_tokens:
            self._finish(ticket, "length")

    def _finish(self, ticket: Ticket, reason: str) -> None:
        if ticket in self._running:
            self._running.remove(ticket)
        ticket.cache = None
        ticket.emit(None, reason)

    def _ended(self, ticket: Ticket) -> bool:
        if ticket.cancelled:
            self._finish(ticket, "cancelled")
        return ticket.cancelled
