"""`iquest eval bfcl`: the Berkeley Function Calling Leaderboard's AST categories (Python), scored by BFCL's
rules (eval/bfcl_checker.py).

    iquest eval bfcl --model HF_DIR --output DIR [--categories simple,multiple,parallel,parallel_multiple]
    iquest eval bfcl --completions FILE.jsonl --output DIR    # {"id", "completion"} lines
    iquest eval bfcl --canonical --output DIR                 # the possible answers as completions

The data is the one the `bfcl-eval` wheel ships (BFCL_v4_*.json and possible_answer/), read from the
installed package; nothing is downloaded. The prompt is the package's chat template (data/chat.py): a
system message listing the tools as JSON, the user's question, then an open assistant turn. A completion
is that assistant body: tool calls as `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`
blocks, exactly as the template renders an assistant message's tool_calls. A block that is not such JSON
makes the item wrong (error_type "decode_error").

Writes DIR/items.jsonl ({"id", "category", "completion", "passed", "error_type"}) and DIR/summary.json
({"items", "accuracy", "categories": {name: {"items", "accuracy"}}}).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from iquest_core.command_line import CommandParser, run_command
from iquest_core.data.chat import message_body, render_chat
from iquest_core.eval import common
from iquest_core.eval.bfcl_checker import CATEGORIES, canonical_calls, check_calls

FILES = {"simple": "BFCL_v4_simple_python.json", "multiple": "BFCL_v4_multiple.json",
         "parallel": "BFCL_v4_parallel.json", "parallel_multiple": "BFCL_v4_parallel_multiple.json"}
SYSTEM = ("You can call the following functions. To call one, answer with <tool_call>\n"
          '{"name": ..., "arguments": {...}}\n</tool_call>, one block per call.\n\nFunctions:\n')
_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def data_dir() -> Path:
    try:
        import bfcl_eval
    except ImportError:
        raise ValueError("bfcl: the `bfcl-eval` package is not installed (pip install --no-deps "
                         "bfcl-eval==2026.3.23)") from None
    return Path(bfcl_eval.__file__).parent / "data"


def parse_categories(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in names if c not in CATEGORIES]
    if unknown or not names:
        raise ValueError(f"--categories: unknown category {unknown[0] if unknown else text!r}; expected some of "
                         f"{', '.join(CATEGORIES)}")
    return names


def load_items(categories: list[str]) -> list[dict]:
    """Items {"id", "category", "messages", "functions", "answers"} of the categories, in file order."""
    root = data_dir()
    items = []
    for category in categories:
        questions = [json.loads(line) for line in (root / FILES[category]).read_text().splitlines() if line.strip()]
        answers = {a["id"]: a["ground_truth"] for a in map(json.loads, (root / "possible_answer" / FILES[category])
                                                          .read_text().splitlines()) if a}
        for q in questions:
            items.append({"id": q["id"], "category": category, "messages": q["question"][0],
                          "functions": q["function"], "answers": answers[q["id"]]})
    return items


def prompt_messages(item: dict) -> list[dict]:
    tools = "\n".join(json.dumps(f, ensure_ascii=False) for f in item["functions"])
    return [{"role": "system", "content": SYSTEM + tools}, *item["messages"]]


def prompt_ids(item: dict, tokenizer) -> list[int]:
    ids, _ = render_chat(prompt_messages(item), tokenizer)
    return ids + [tokenizer.special_id("<|im_start|>"), *tokenizer.encode("assistant\n")]


def render_calls(calls: list[dict]) -> str:
    """The assistant body of `calls` ({name: arguments}) in the chat template."""
    tool_calls = [{"name": name, "arguments": args} for call in calls for name, args in call.items()]
    return message_body({"role": "assistant", "content": "", "tool_calls": tool_calls}, "instruct")


def parse_calls(completion: str) -> list[dict] | None:
    """The completion's tool calls as [{name: arguments}], None if a block is not {"name": str,
    "arguments": object} JSON."""
    calls = []
    for block in _CALL.findall(completion):
        try:
            call = json.loads(block)
        except json.JSONDecodeError:
            return None
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) \
                or not isinstance(call.get("arguments", {}), dict):
            return None
        calls.append({call["name"]: call.get("arguments", {})})
    return calls


def score(item: dict, completion: str) -> dict:
    calls = parse_calls(completion)
    passed, error = (False, "decode_error") if calls is None else \
        check_calls(item["category"], item["functions"], calls, item["answers"])
    return {"id": item["id"], "category": item["category"], "completion": completion, "passed": passed,
            "error_type": error}


def summarize(rows: list[dict]) -> dict:
    return {"items": len(rows), "accuracy": sum(r["passed"] for r in rows) / len(rows) if rows else 0.0,
            "categories": {c: {"items": v["items"], "accuracy": v["passed"]}
                           for c, v in common.rates(rows, "category", ["passed"]).items()}}


def bfcl_main(args) -> dict:
    items = load_items(parse_categories(args.categories))
    if common.check_limit(args.limit):
        items = [i for c in dict.fromkeys(i["category"] for i in items)
                 for i in [j for j in items if j["category"] == c][:args.limit]]
    start = time.monotonic()
    rows = [score(item, completion) for item, completion in zip(items, common.completions(
        args, items, "bfcl", canonical=lambda i: render_calls(canonical_calls(i["functions"], i["answers"])),
        prompt=prompt_ids))]
    summary = {**summarize(rows), "seconds": round(time.monotonic() - start, 2)}
    return common.write_outputs(args.output, rows, summary)


def _parser() -> CommandParser:
    parser = CommandParser(prog="iquest eval bfcl", description=__doc__.split("\n\n")[0])
    common.add_source_arguments(parser, completions_help="JSONL of {id, completion}")
    parser.add_argument("--categories", default=",".join(CATEGORIES),
                        help=f"comma-separated, of {', '.join(CATEGORIES)} (default all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_command("iquest eval bfcl", lambda: print(json.dumps(bfcl_main(args))))


if __name__ == "__main__":
    sys.exit(main())
