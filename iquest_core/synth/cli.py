"""`iquest synth PIPELINE`: model-in-the-loop synthesis writing OUT/accepted.jsonl, OUT/rejected.jsonl
(each with its reasons) and OUT/summary.json (yield, rejection reasons).

    iquest synth code    --input problems.jsonl --out OUT --serve HF_DIR     # {"id", "prompt"}
    iquest synth perturb --input verified.jsonl --out OUT                    # {"id", "prompt", "solution", "tests"}
    iquest synth reverse --input verified.jsonl --out OUT --endpoint URL --model NAME
    iquest synth math    --input math.jsonl     --out OUT --serve HF_DIR     # {"id", "problem", "answer"}
    iquest synth debate  --input prompts.jsonl  --out OUT --serve HF_DIR --judges 3   # {"id", "prompt"}

The model: `--serve HF_DIR` starts `iquest serve` inside the process (the default embedded endpoint);
`--endpoint URL --model NAME` uses any OpenAI-compatible endpoint instead. Every accepted record is
checked against the package's evaluations (synth.decontam) before it is written.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

from iquest_core.command_line import CommandParser
from iquest_core.jsonl import read_jsonl
from iquest_core.sandbox import run_many
from iquest_core.serve.client import ChatClient
from iquest_core.synth import code
from iquest_core.synth.debate import debate_pipeline
from iquest_core.synth.decontam import EvaluationGuard
from iquest_core.synth.math_pipeline import math_pipeline
from iquest_core.synth.perturb import perturb
from iquest_core.synth.records import RecordSink

NEEDS_MODEL = ("code", "reverse", "math", "debate")
FIELDS = {"code": ("id", "prompt"), "perturb": ("id", "prompt", "solution", "tests"),
          "reverse": ("id", "prompt", "solution", "tests"), "math": ("id", "problem", "answer"),
          "debate": ("id", "prompt")}


def _read(path: str, pipeline: str) -> list[dict[str, Any]]:
    records = [r for _, r in read_jsonl(path, "--input")]
    for i, record in enumerate(records):
        missing = [f for f in FIELDS[pipeline] if not isinstance(record, dict) or f not in record]
        if missing:
            raise ValueError(f"--input: record {i} of {path} lacks {missing} (pipeline {pipeline} needs "
                             f"{list(FIELDS[pipeline])})")
    return records


def run(pipeline: str, argv: list[str]) -> int:
    parser = CommandParser(prog=f"iquest synth {pipeline}", description=__doc__.split("\n")[0])
    parser.add_argument("--input", required=True, help="JSONL of problems (see iquest synth --help)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--serve", metavar="HF_DIR", help="serve this export in-process (default endpoint)")
    parser.add_argument("--endpoint", help="an OpenAI-compatible base URL instead, e.g. http://host:8000/v1")
    parser.add_argument("--model", help="the model name at --endpoint")
    parser.add_argument("--samples", type=int, default=4, help="samples per problem")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--judges", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=5.0, help="sandbox seconds per run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    items = _read(args.input, pipeline)
    if pipeline in NEEDS_MODEL and not args.serve and not (args.endpoint and args.model):
        raise ValueError(f"--serve: pipeline {pipeline} needs --serve HF_DIR or --endpoint URL --model NAME")
    sink = RecordSink(EvaluationGuard.for_package_evaluations())
    with contextlib.ExitStack() as stack:
        client = None
        if pipeline in NEEDS_MODEL:
            endpoint, model = args.endpoint, args.model
            if args.serve and not args.endpoint:
                from iquest_core.serve.server import EmbeddedServer
                server = stack.enter_context(EmbeddedServer(args.serve))
                endpoint, model = server.url, server.model_name
            client = stack.enter_context(ChatClient(endpoint, model))
        limits = {"max_tokens": args.max_tokens}
        if pipeline == "code":
            code.test_driven(items, client, run_many, sink, samples=args.samples, timeout_s=args.timeout, **limits)
        elif pipeline == "reverse":
            code.reverse_flow(items, client, run_many, sink, samples=args.samples, timeout_s=args.timeout, **limits)
        elif pipeline == "perturb":
            perturb(items, run_many, sink, seed=args.seed, timeout_s=args.timeout)
        elif pipeline == "math":
            math_pipeline(items, client, sink, samples=args.samples, **limits)
        else:
            debate_pipeline(items, client, sink, judges=args.judges, rounds=args.rounds, **limits)
    summary = sink.write(args.out)
    print(json.dumps(summary), file=sys.stdout)
    return 0


def code_main(argv): return run("code", argv)  # noqa: E704
def perturb_main(argv): return run("perturb", argv)  # noqa: E704
def reverse_main(argv): return run("reverse", argv)  # noqa: E704
def math_main(argv): return run("math", argv)  # noqa: E704
def debate_main(argv): return run("debate", argv)  # noqa: E704
