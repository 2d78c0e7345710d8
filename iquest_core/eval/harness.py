"""`iquest eval humaneval`: HumanEval pass@k of a model, a file of completions or the canonical solutions.

    iquest eval humaneval --model HF_DIR [--samples N] [--k 1,10] [--temperature T] --output DIR
    iquest eval humaneval --completions FILE.jsonl --output DIR   # {"task_id", "completion"} lines
    iquest eval humaneval --canonical --output DIR                # the dataset's own solutions

Writes DIR/samples.jsonl (every completion with its verdict), DIR/problems.jsonl (per problem: n, correct,
pass@k) and DIR/summary.json ({"problems", "samples", "pass@K" for each K}), each atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from iquest_core.atomic_io import write_atomic
from iquest_core.command_line import CommandParser, run_command
from iquest_core.jsonl import read_jsonl, write_jsonl
from iquest_core.eval import humaneval


def _read_completions(path: Path) -> list[dict]:
    """The {task_id, completion} records of a HumanEval completions file; ValueError naming --completions and
    the line of one that is not (e.g. an {id, completion} line of another benchmark's file)."""
    samples = []
    for line, sample in read_jsonl(path, "--completions"):
        if not isinstance(sample, dict) or not isinstance(sample.get("task_id"), str) \
                or not isinstance(sample.get("completion"), str):
            raise ValueError(f"--completions: {path} line {line}: expected {{\"task_id\", \"completion\": str}} "
                             f"(a completions file for another benchmark?)")
        samples.append(sample)
    return samples


def _parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(k) for k in text.split(",")})
    except ValueError:
        ks = []
    if not ks or ks[0] < 1:
        raise argparse.ArgumentTypeError(f"expected positive ints separated by commas, got {text!r}")
    return ks


def _parser() -> argparse.ArgumentParser:
    he = CommandParser(prog="iquest eval humaneval", description=__doc__.split("\n\n")[0])
    source = he.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="Hugging Face layout directory (config.json, weights, "
                                                   "tokenizer.json)")
    source.add_argument("--completions", type=Path, help="JSONL of {task_id, completion}")
    source.add_argument("--canonical", action="store_true", help="check the dataset's canonical solutions")
    he.add_argument("--output", type=Path, required=True)
    he.add_argument("--k", type=_parse_ks, default=[1], help="comma-separated k values (default 1)")
    he.add_argument("--samples", type=int, default=1, help="completions per problem with --model")
    he.add_argument("--temperature", type=float, default=0.0, help="0: greedy (with --model)")
    he.add_argument("--top-p", type=float, default=0.95)
    he.add_argument("--max-new-tokens", type=int, default=384)
    he.add_argument("--seed", type=int, default=0)
    he.add_argument("--limit", type=int, default=None, help="only the first N problems (quick runs)")
    he.add_argument("--workers", type=int, default=None, help="parallel sandboxes (default: CPU count)")
    he.add_argument("--timeout", type=float, default=10.0, help="seconds per completion")
    return he


def _samples(args, problems: dict[str, dict]) -> list[dict]:
    if args.canonical:
        return [{"task_id": t, "completion": p["canonical_solution"]} for t, p in problems.items()]
    if args.completions is not None:
        samples = _read_completions(args.completions)
        wanted = {s.get("task_id") for s in samples if isinstance(s, dict)}
        if args.limit is not None:
            samples = [s for s in samples if s.get("task_id") in problems]
        elif not wanted <= problems.keys():
            raise ValueError(f"--completions: unknown task_ids {sorted(map(str, wanted - problems.keys()))[:5]}")
        return samples
    from iquest_core.data.tokenizer import load_tokenizer
    from iquest_core.model import LoopCoderForCausalLM
    try:
        model, tokenizer = LoopCoderForCausalLM.from_pretrained(args.model).eval(), load_tokenizer(args.model)
    except (OSError, ValueError) as e:
        raise ValueError(f"--model: {e}") from None
    return humaneval.sample_completions(model, tokenizer, problems, samples=args.samples,
                                        temperature=args.temperature, top_p=args.top_p,
                                        max_new_tokens=args.max_new_tokens, seed=args.seed)


def humaneval_main(args) -> dict:
    problems = humaneval.load_problems()
    if args.limit is not None:
        if args.limit < 1:
            raise ValueError(f"--limit: expected a positive int, got {args.limit}")
        problems = dict(list(problems.items())[:args.limit])
    start = time.monotonic()
    samples = _samples(args, problems)
    verdicts = humaneval.check_completions(problems, samples, workers=args.workers, timeout_s=args.timeout)
    rows, summary = humaneval.summarize(samples, verdicts, args.k)
    summary["seconds"] = round(time.monotonic() - start, 2)
    args.output.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.output / "samples.jsonl",
                ({**s, "status": v.status, "passed": v.passed, "stderr": v.stderr[-2000:]} for s, v in zip(samples, verdicts)))
    write_jsonl(args.output / "problems.jsonl", rows)
    write_atomic(args.output / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_command("iquest eval humaneval", lambda: print(json.dumps(humaneval_main(args))))


if __name__ == "__main__":
    sys.exit(main())
