"""`iquest eval humaneval-infill`: infilling problems cut from HumanEval's canonical solutions by the
package's FIM splitter (data/fim.py), judged by running the problem's tests in the sandbox.

    iquest eval humaneval-infill --model HF_DIR --output DIR [--modes single-line,multi-line,random-span]
    iquest eval humaneval-infill --completions FILE.jsonl --output DIR   # {"id", "completion"}: the middle
    iquest eval humaneval-infill --canonical --output DIR                # the true middles

Modes, as in the FIM paper's evaluation: single-line (one whole line of the canonical body), multi-line
(two or three whole lines) and random-span (a random character span), each cut from the canonical
solution only (never the prompt) by `fim.split` ("line" and "char") with a per-problem seed; a problem
whose body cannot give a mode's cut (a one-line body has no multi-line cut) has no item in that mode.
The model sees the file-level template `<|fim_prefix|>{prompt + body before}<|fim_suffix|>{body
after}<|fim_middle|>` and writes the middle (ending at <|im_end|>); prefix + middle + suffix is run with
`check(entry_point)` in the sandbox. Item ids are "HumanEval/N/mode".

Writes DIR/items.jsonl ({"id", "task_id", "mode", "middle", "completion", "passed", "status"}) and
DIR/summary.json ({"items", "pass@1", "modes": {mode: {"items", "pass@1"}}}).
"""

from __future__ import annotations

import json
import random
import sys
import time

from iquest_core.command_line import CommandParser, run_command
from iquest_core.data import fim
from iquest_core.eval import common, humaneval
from iquest_core.sandbox import run_many

MODES = ("single-line", "multi-line", "random-span")
ATTEMPTS = 64  # line cuts drawn until one has the mode's line count


def parse_modes(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODES]
    if unknown or not names:
        raise ValueError(f"--modes: unknown mode {unknown[0] if unknown else text!r}; expected some of "
                         f"{', '.join(MODES)}")
    return names


def cut(body: str, mode: str, rng: random.Random) -> fim.FimSplit | None:
    """A split of `body` for `mode`, or None when the body has no such cut."""
    if mode == "random-span":
        return fim.split(body, "char", rng)
    for _ in range(ATTEMPTS):
        split = fim.split(body, "line", rng)
        if split is None:
            return None
        lines = split.middle.rstrip("\n").count("\n") + 1
        if (lines == 1) == (mode == "single-line"):
            return split
    return None


def build_items(problems: dict[str, dict], modes: list[str], seed: int = 0) -> list[dict]:
    """Items {"id", "task_id", "mode", "prefix", "middle", "suffix"}: per problem and mode, one cut of its
    canonical solution; the prefix starts with the problem's prompt."""
    items = []
    for task_id, problem in problems.items():
        for mode in modes:
            split = cut(problem["canonical_solution"], mode, random.Random(f"{seed}/{task_id}/{mode}"))
            if split is not None:
                items.append({"id": f"{task_id}/{mode}", "task_id": task_id, "mode": mode,
                              "prefix": problem["prompt"] + split.prefix, "middle": split.middle,
                              "suffix": split.suffix})
    return items


def prompt_ids(item: dict, tokenizer) -> list[int]:
    """The file-level FIM template up to and including <|fim_middle|>."""
    parts = fim.file_parts(fim.FimSplit(item["prefix"], "", item["suffix"]))
    return tokenizer.encode_parts(parts[:-2])


def judge(problems: dict[str, dict], items: list[dict], middles: list[str], *, workers: int | None = None,
          timeout_s: float = 10.0) -> list:
    """Sandbox verdicts of prefix + middle + suffix under each problem's tests."""
    jobs = [humaneval.check_job({**problems[i["task_id"]], "prompt": i["prefix"]}, middle + i["suffix"])
            for i, middle in zip(items, middles, strict=True)]
    return run_many(jobs, workers=workers, timeout_s=timeout_s)


def summarize(rows: list[dict]) -> dict:
    return {"items": len(rows), "pass@1": sum(r["passed"] for r in rows) / len(rows) if rows else 0.0,
            "modes": {m: {"items": v["items"], "pass@1": v["passed"]}
                      for m, v in common.rates(rows, "mode", ["passed"]).items()}}


def infill_main(args) -> dict:
    modes = parse_modes(args.modes)
    problems = humaneval.load_problems()
    if common.check_limit(args.limit):
        problems = dict(list(problems.items())[:args.limit])
    items = build_items(problems, modes, args.seed)
    start = time.monotonic()
    middles = common.completions(args, items, "humaneval-infill", canonical=lambda i: i["middle"],
                                 prompt=prompt_ids)
    verdicts = judge(problems, items, middles, workers=args.workers, timeout_s=args.timeout)
    rows = [{"id": i["id"], "task_id": i["task_id"], "mode": i["mode"], "middle": i["middle"], "completion": m,
             "passed": v.passed, "status": v.status} for i, m, v in zip(items, middles, verdicts)]
    summary = {**summarize(rows), "seconds": round(time.monotonic() - start, 2)}
    return common.write_outputs(args.output, rows, summary)


def _parser() -> CommandParser:
    parser = CommandParser(prog="iquest eval humaneval-infill", description=__doc__.split("\n\n")[0])
    common.add_source_arguments(parser, completions_help="JSONL of {id, completion} (the middle)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--seed", type=int, default=0, help="where the cuts fall")
    parser.add_argument("--workers", type=int, default=None, help="parallel sandboxes (default: CPU count)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per item")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_command("iquest eval humaneval-infill", lambda: print(json.dumps(infill_main(args))))


if __name__ == "__main__":
    sys.exit(main())
