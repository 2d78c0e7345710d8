"""Pipeline steps: small objects with one method over a stream of documents.

A data job is a list of steps (read -> filter -> dedup -> decontaminate -> FIM -> tokenize -> write) run
shard by shard: a worker reads one input shard, streams its documents through every step and writes one
output shard, so memory is bounded by the shard and the steps' own state, never by the corpus.

    from iquest_core.data.steps import Step, ShardContext, register

    @register
    @dataclass
    class DropShort:
        '''Drops documents shorter than `min_chars` characters.'''
        name: ClassVar[str] = "drop_short"
        min_chars: int = 10

        def run(self, docs, ctx):
            for doc in docs:
                if len(doc["content"]) < self.min_chars:
                    ctx.count("dropped:short")
                    continue
                yield doc

Contract:
- A document (`Doc`) is a dict with "path" (str), "content" (str) and "repo" (str or None); readers keep
  every other field of the input record, writers write every field. A step may add fields (scores,
  "special" spans of templates) and changes "content" only to replace the text (FIM templates).
- `run(docs, ctx)` consumes an iterator and yields the documents it keeps, in order. It must be
  deterministic given the documents, its options and `ctx.seed` (random draws per document from
  `document_rng(ctx.seed, doc)`), so that any engine and worker count give the same bytes.
- A step counts what it did with `ctx.count(outcome)` (outcomes are "kept:python", "dropped:short", ...;
  `chain` files them under the step's name, "drop_short:dropped:short") and inputs it could not read with
  `ctx.skip(reason, source)`; the driver sums them over shards.
- Options are the dataclass fields; a pipeline file (TOML) gives them by name:
  `[[steps]] name = "drop_short"  min_chars = 20`. `make_step(table)` builds a step and refuses
  unknown names and options (ValueError naming them).
- A step that needs the whole corpus before it can decide (dedup) is a `GlobalStep`: besides `run` (its
  filter pass) it has `collect(docs, ctx)` (first pass over each shard, writing per-shard files under
  `ctx.state_dir`) and `reduce(job)` (on-disk stages between the passes). The driver cuts the pipeline at
  each global step: one pass writes intermediate shards while collecting, `reduce` runs, the next pass
  reads the intermediate shards and starts with the step's `run`.

Adding a step: a module with a `@register`-ed dataclass, and its module name in STEP_MODULES below
(modules are imported on first lookup, so `iquest_core.data.steps` stays cheap to import).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

Doc = dict[str, Any]

STEP_MODULES = (
    "iquest_core.data.steps.code",
    "iquest_core.data.steps.fim_templates",
    "iquest_core.data.steps.line_length",
    "iquest_core.data.steps.near_dedup",
    "iquest_core.data.steps.quality",
    "iquest_core.data.steps.semdedup",
    "iquest_core.data.steps.tokenize",
)
_REGISTRY: dict[str, type] = {}


@dataclass
class ShardContext:
    """What a step sees of the shard it runs on. `shard` is the shard's index in the job, `name` its file
    stem ("shard-00003"), `state_dir` the job's scratch directory for per-shard state (global steps)."""
    shard: int
    name: str
    seed: int = 0
    state_dir: Path | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    prefix: str = ""

    def count(self, outcome: str, n: int = 1) -> None:
        self.outcomes[f"{self.prefix}{outcome}"] += n

    def skip(self, reason: str, source: str | Path) -> None:
        """One unreadable input (a record, a file's rest) of `source`, for `reason` ("bad_record", ...)."""
        self.skipped[f"{reason}: {source}"] += 1


@runtime_checkable
class Step(Protocol):
    name: ClassVar[str]

    def run(self, docs: Iterator[Doc], ctx: ShardContext) -> Iterator[Doc]: ...


@runtime_checkable
class GlobalStep(Step, Protocol):
    def collect(self, docs: Iterator[Doc], ctx: ShardContext) -> Iterator[Doc]: ...

    def reduce(self, job: Any) -> Counter[str]: ...


def register(cls: type) -> type:
    """Class decorator: makes the step class available by its `name` (a class attribute)."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"cls: a step class needs a non-empty str class attribute `name`, {cls.__name__} has {name!r}")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"name: step {name!r} is registered twice ({_REGISTRY[name].__name__}, {cls.__name__})")
    _REGISTRY[name] = cls
    return cls


def step_names() -> list[str]:
    """Every registered step name, sorted."""
    for module in STEP_MODULES:
        importlib.import_module(module)
    return sorted(_REGISTRY)


def step_class(name: str) -> type:
    """The class registered as `name`; ValueError listing the known names otherwise."""
    names = step_names()
    if name not in _REGISTRY:
        raise ValueError(f"name: unknown step {name!r}; known steps: {', '.join(names)}")
    return _REGISTRY[name]


def make_step(table: dict[str, Any]) -> Step:
    """A step from a pipeline table: {"name": NAME, option: value, ...}."""
    if not isinstance(table, dict) or not isinstance(table.get("name"), str):
        raise ValueError(f"steps: expected a table with a string `name`, got {table!r}")
    cls = step_class(table["name"])
    options = {k: v for k, v in table.items() if k != "name"}
    known = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"steps: step {table['name']!r} has no option {unknown[0]!r}; options: {sorted(known)}")
    return cls(**options)


def step_table(step: Step) -> dict[str, Any]:
    """The pipeline table that `make_step` turns back into an equal step."""
    return {"name": step.name, **dataclasses.asdict(step)}


def chain(steps: list[Step], docs: Iterator[Doc], ctx: ShardContext) -> Iterator[Doc]:
    """The stream after every step in order (lazy: nothing runs until it is consumed). Each step counts its
    outcomes under its own name ("syntax_filter:kept:python"); the counters are ctx's."""
    for step in steps:
        docs = step.run(docs, dataclasses.replace(ctx, prefix=f"{step.name}:"))
    return docs


def document_rng(seed: int, doc: Doc) -> random.Random:
    """A generator that depends only on the seed and the document's identity (repo, path), so a step's
    draws do not depend on how documents are spread over shards and workers."""
    key = f"{seed}\0{doc.get('repo')}\0{doc['path']}".encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
