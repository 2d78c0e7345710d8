"""The driver of data jobs: a list of steps run shard by shard on an engine, resumable.

    pipeline = Pipeline(inputs=["corpus/"], output="out/", steps=[make_step({"name": "syntax_filter"}), ...])
    summary = run_pipeline(pipeline, engine="local", workers=2)

or from a file (`iquest data run PIPELINE.toml`):

    inputs = ["corpus/"]          # directories, .jsonl, .jsonl.gz, .parquet (steps.io.plan_shards)
    output = "out/"               # a directory of shard-NNNNN.<output_format>, one per input shard
    output_format = "jsonl.gz"    # or "jsonl", "parquet"; "tokens" after a last tokenize step (token shards)
    shard_bytes = 33554432        # the largest input shard (byte ranges of .jsonl, row groups, files)
    seed = 0                      # per-document random draws (steps.document_rng)
    [[steps]]
    name = "syntax_filter"
    max_error_share = 0.02

The driver holds shard descriptions and counts only; workers read their input shard, run the steps and
write their output shard. The pipeline is cut at each global step (dedup): pass k writes intermediate
shards under OUT/.state/pass-k while the global step collects its per-shard state, the step's `reduce`
runs its on-disk stages, and pass k + 1 reads the intermediate shards starting with the step's filter.

Resuming: OUT/job.json records the job (steps, format, seed, shard plan); every finished shard and
reduce stage leaves a marker under OUT/.done with its counts. Running the same job again skips what has a
marker, so a killed job redoes only its unfinished shards and ends with the same bytes. An OUT that
holds anything else (files without a job.json, or another job's job.json) is refused. Intermediate
state is removed once the job is complete; the markers stay (a rerun of a complete job does nothing).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from iquest_core.atomic_io import write_atomic
from iquest_core.data.engine import map_shards
from iquest_core.data.steps import Doc, GlobalStep, ShardContext, Step, chain, make_step, step_table
from iquest_core.data.steps.io import OUTPUT_FORMATS, InputShard, plan_shards, read_shard, write_shard

JOB_FILE = "job.json"
JOB_FORMAT = "iquest-data-job"
DEFAULT_SHARD_BYTES = 32 << 20
PIPELINE_KEYS = ("inputs", "output", "output_format", "shard_bytes", "seed", "steps")


@dataclass
class Pipeline:
    inputs: list[str]
    output: str
    steps: list[Step]
    output_format: str = "jsonl.gz"
    shard_bytes: int = DEFAULT_SHARD_BYTES
    seed: int = 0

    def __post_init__(self) -> None:
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format: expected one of {OUTPUT_FORMATS}, got {self.output_format!r}")
        if not self.steps:
            raise ValueError("steps: expected at least one step")
        tokenizes = [i for i, step in enumerate(self.steps) if step.name == "tokenize"]
        if (self.output_format == "tokens") != (tokenizes == [len(self.steps) - 1]):
            raise ValueError(f"output_format: 'tokens' goes with one tokenize step, the last; got {self.output_format!r} "
                             f"with steps {[step.name for step in self.steps]}")


@dataclass
class Summary:
    """What a job did: documents in, counts by outcome, inputs skipped by reason."""
    documents: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def print(self, title: str, stream: TextIO | None = None) -> None:
        stream = sys.stderr if stream is None else stream  # the current stderr, not the one at import
        print(f"{title}: {self.documents} documents in", file=stream)
        for name, counts in (("outcome", self.outcomes), ("skipped", self.skipped)):
            for key, count in sorted(counts.items()):
                print(f"  {name:8s} {key:28s} {count}", file=stream)


@dataclass
class RunSummary:
    """What a job did: documents read, counts per outcome, skipped inputs ("reason: file" -> count), shards
    run now and shards found finished (resumed)."""
    documents: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    shards_run: int = 0
    shards_resumed: int = 0

    def print(self, title: str, examples: int = 3) -> None:
        """Counts per outcome and per skip reason, with the first `examples` files of each reason."""
        by_reason: dict[str, list[str]] = {}
        for key in sorted(self.skipped):
            reason, _, source = key.partition(": ")
            by_reason.setdefault(reason, []).append(source)
        Summary(self.documents, self.outcomes, Counter({r: sum(self.skipped[f"{r}: {s}"] for s in sources)
                                                         for r, sources in by_reason.items()})).print(title)
        for reason, sources in by_reason.items():
            more = f" and {len(sources) - examples} more" if len(sources) > examples else ""
            print(f"  {reason}: {', '.join(sources[:examples])}{more}", file=sys.stderr)
        print(f"  shards   run {self.shards_run}, finished before {self.shards_resumed}", file=sys.stderr)


def load_pipeline(path: str | Path) -> Pipeline:
    """A Pipeline from a TOML file (module docstring); relative paths are relative to the file's folder."""
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"pipeline: cannot read {path} ({error})") from None
    unknown = sorted(set(table) - set(PIPELINE_KEYS))
    if unknown:
        raise ValueError(f"pipeline: unknown key {unknown[0]!r} in {path}; keys: {', '.join(PIPELINE_KEYS)}")
    for key in ("inputs", "output", "steps"):
        if key not in table:
            raise ValueError(f"pipeline: {path} has no {key!r}")
    here = path.parent
    return Pipeline(inputs=[str(here / p) for p in table["inputs"]], output=str(here / table["output"]),
                    steps=[make_step(t) for t in table["steps"]],
                    output_format=table.get("output_format", "jsonl.gz"),
                    shard_bytes=table.get("shard_bytes", DEFAULT_SHARD_BYTES), seed=table.get("seed", 0))


@dataclass(frozen=True)
class ShardTask:
    """One shard of one pass: read `source`, run `steps`, write `sink`, then the marker."""
    number: int
    source: InputShard
    steps: tuple[Step, ...]
    sink: str
    marker: str
    seed: int


@dataclass(frozen=True)
class ReduceContext:
    """What a global step's reduce gets: its state folder, the shard count and the job's engine
    (`map(fn, items, desc)` as engine.map_shards)."""
    state_dir: Path
    num_shards: int
    engine: dict[str, Any]

    def map(self, fn: Any, items: list, desc: str) -> list:
        return map_shards(fn, items, desc=desc, **self.engine)


def run_shard(task: ShardTask) -> dict:
    """Run one shard task (on a worker); returns and records its counts. A step's error becomes a
    RuntimeError naming the shard."""
    ctx = ShardContext(task.number, f"shard-{task.number:05d}", task.seed)
    counted = {"documents": 0, "bytes": 0}

    def source() -> Iterator[Doc]:
        for doc in read_shard(task.source, ctx):
            counted["documents"] += 1
            counted["bytes"] += len(doc["content"].encode("utf-8"))
            yield doc

    try:
        written, _ = write_shard(task.sink, chain(list(task.steps), source(), ctx))
    except Exception as error:  # any step's failure: name the shard (its output and marker are not written)
        raise RuntimeError(f"shard {task.number} ({task.source.source}): {type(error).__name__}: {error}") from error
    result = {**counted, "written": written, "outcomes": dict(ctx.outcomes), "skipped": dict(ctx.skipped)}
    write_atomic(task.marker, json.dumps(result, sort_keys=True))
    return result


class _GlobalPass:
    """One pass of a global step as a plain step: `method` "collect" or "run", with its state folder."""

    def __init__(self, step: GlobalStep, method: str, state_dir: Path) -> None:
        self.step, self.method, self.state_dir, self.name = step, method, state_dir, step.name

    def run(self, docs: Iterator[Doc], ctx: ShardContext) -> Iterator[Doc]:
        return getattr(self.step, self.method)(docs, dataclasses.replace(ctx, state_dir=self.state_dir, prefix=""))


def passes(step_list: list[Step], state: Path) -> list[tuple[list[Step], GlobalStep | None, Path | None]]:
    """The pipeline cut at its global steps: (steps of the pass, the global step collected at its end, its
    state folder)."""
    cut: list[tuple[list[Step], GlobalStep | None, Path | None]] = []
    current: list[Step] = []
    for step in step_list:
        if isinstance(step, GlobalStep):
            state_dir = state / f"{step.name}-{len(cut)}"
            cut.append((current + [_GlobalPass(step, "collect", state_dir)], step, state_dir))
            current = [_GlobalPass(step, "run", state_dir)]
        else:
            current.append(step)
    return cut + [(current, None, None)]


def job_record(pipeline: Pipeline, shards: list[InputShard]) -> dict:
    return {"format": JOB_FORMAT, "steps": [step_table(s) for s in pipeline.steps],
            "output_format": pipeline.output_format, "seed": pipeline.seed,
            "shards": [s.to_json() for s in shards]}


def claim_output(out: Path, record: dict) -> None:
    """Create OUT with job.json, or accept an OUT holding this very job; refuse anything else."""
    job_file = out / JOB_FILE
    if job_file.is_file():
        try:
            existing = json.loads(job_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            existing = None
        if existing != record:
            raise ValueError(f"output: {out} holds another job's outputs ({job_file} differs); choose another "
                             "directory or remove it")
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"output: {out} exists and holds files that are not a data job's; choose another directory")
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(job_file, json.dumps(record, indent=1, sort_keys=True))


def _rates(began: float, totals: dict, result: dict, bar: Any) -> None:
    totals["documents"] += result["documents"]
    totals["bytes"] += result["bytes"]
    elapsed = max(time.perf_counter() - began, 1e-9)
    bar.set_postfix_str(f"{totals['documents'] / elapsed:,.0f} docs/s, {totals['bytes'] / elapsed / 1e6:.1f} MB/s")


def run_pipeline(pipeline: Pipeline, *, engine: str = "local", workers: int | None = None,
                 address: str | None = None, progress: bool = True) -> RunSummary:
    """Run (or resume) the job; see the module docstring."""
    out = Path(pipeline.output)
    shards, plan_skipped = plan_shards(pipeline.inputs, pipeline.shard_bytes)
    claim_output(out, job_record(pipeline, shards))
    for stale in out.rglob(".*.tmp"):  # temporaries of writers killed mid-shard
        stale.unlink()
    done, state = out / ".done", out / ".state"
    done.mkdir(exist_ok=True)
    options = {"engine": engine, "workers": workers, "address": address}
    summary = RunSummary(skipped=Counter({f"{reason}: {source}": 1 for source, reason in plan_skipped}))
    cut = passes(pipeline.steps, state)
    for k, (pass_steps, global_step, state_dir) in enumerate(cut):
        last = k == len(cut) - 1
        if state_dir:
            state_dir.mkdir(parents=True, exist_ok=True)
        tasks = []
        for i, shard in enumerate(shards):
            source = shard if k == 0 else InputShard("lines", str(state / f"pass-{k - 1}" / f"shard-{i:05d}.jsonl"), 0,
                                                     1 << 62)
            sink = out / f"shard-{i:05d}.{pipeline.output_format}" if last else state / f"pass-{k}" / f"shard-{i:05d}.jsonl"
            tasks.append(ShardTask(i, source, tuple(pass_steps), str(sink), str(done / f"pass-{k}-shard-{i:05d}.json"),
                                   pipeline.seed))
        results = [json.loads(Path(t.marker).read_text()) if Path(t.marker).is_file() else None for t in tasks]
        todo = [t for t, r in zip(tasks, results) if r is None]
        summary.shards_resumed += len(tasks) - len(todo)
        summary.shards_run += len(todo)
        totals, began = {"documents": 0, "bytes": 0}, time.perf_counter()
        names = "+".join(s.name for s in pass_steps)
        fresh = iter(map_shards(run_shard, todo, desc=f"pass {k + 1}/{len(cut)} ({names})" if progress else None,
                                on_result=functools.partial(_rates, began, totals), **options))
        results = [r if r is not None else next(fresh) for r in results]
        if k == 0:
            summary.documents = sum(r["documents"] for r in results)
        for r in results:
            summary.outcomes.update(r["outcomes"])
            summary.skipped.update(r["skipped"])
        if global_step is not None:
            summary.outcomes.update(_reduce(global_step, ReduceContext(state_dir, len(shards), options),
                                            done / f"reduce-{k}.json"))
    if pipeline.output_format == "tokens":
        write_token_index(out, results, pipeline.steps[-1])
    if state.exists():
        shutil.rmtree(state)
    return summary


def write_token_index(out: Path, results: list[dict], tokenize: Step) -> None:
    """index.json of the token shards (iquest_core.data.shards), written last."""
    from iquest_core.data.shards import write_index
    from iquest_core.data.steps.tokenize import cached_tokenizer

    entries = [{"name": f"shard-{i:05d}", "num_documents": r["written"], "num_tokens": r["outcomes"].get("tokenize:tokens", 0)}
               for i, r in enumerate(results)]
    write_index(out, entries, vocab_size=cached_tokenizer(tokenize.tokenizer).vocab_size)


def _reduce(step: GlobalStep, ctx: ReduceContext, marker: Path) -> Counter[str]:
    if marker.is_file():
        return Counter(json.loads(marker.read_text()))
    counts = Counter(step.reduce(ctx))
    write_atomic(marker, json.dumps(dict(counts), sort_keys=True))
    return counts

