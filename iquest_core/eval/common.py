"""What every `iquest eval NAME` shares: the model loaded once, batched greedy decoding with the dual-cache
generate, completions files checked against the benchmark's item ids, and the outputs (per-item JSONL and
summary.json, written atomically).

Batching without padding: `model.generate` takes prompts of one length, so prompts are grouped by exact
token length and each group is decoded as one batch (up to `batch_size` rows); every row sees exactly its
own prompt, as if decoded alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch

from iquest_core.atomic_io import write_atomic
from iquest_core.jsonl import read_jsonl, write_jsonl


def load_model(path: Path):
    """(model in eval mode, tokenizer) from a Hugging Face layout directory; ValueError naming --model."""
    from iquest_core.data.tokenizer import load_tokenizer
    from iquest_core.model import LoopCoderForCausalLM
    try:
        return LoopCoderForCausalLM.from_pretrained(path).eval(), load_tokenizer(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"--model: {e}") from None


def stop_ids(model, tokenizer, names: Sequence[str]) -> list[int]:
    """The config's eos ids and those of the special tokens `names` the tokenizer has."""
    ids = list(model.config.eos_token_ids)
    for name in names:
        try:
            ids.append(tokenizer.special_id(name))
        except (AttributeError, ValueError):
            pass
    return sorted(set(ids))


@torch.no_grad()
def greedy_batches(model, tokenizer, prompts: Sequence[list[int]], *, max_new_tokens: int,
                   eos: Sequence[int], stop: Callable[[str], bool] | None = None,
                   batch_size: int = 16) -> list[str]:
    """Greedy completions (decoded text, up to the first eos id) of token-id prompts, in order. Prompts
    of equal length are decoded together, `batch_size` rows at a time; a row ends at an eos id or once
    `stop(text)` is True. The new-token budget is clipped to the model's max_position_embeddings."""
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size}")
    device = next(model.parameters()).device
    eos_set = set(eos)
    by_length: dict[int, list[int]] = {}
    for i, prompt in enumerate(prompts):
        if not prompt:
            raise ValueError(f"prompts: prompt {i} is empty")
        by_length.setdefault(len(prompt), []).append(i)
    out = [""] * len(prompts)

    def texts(ids: torch.Tensor, start: int) -> list[str]:
        rows = [row[start:] for row in ids.tolist()]
        return [tokenizer.decode(row[:next((j for j, t in enumerate(row) if t in eos_set), len(row))])
                for row in rows]

    for length, members in by_length.items():
        budget = max(0, min(max_new_tokens, model.config.max_position_embeddings - length))
        for at in range(0, len(members), batch_size):
            chunk = members[at:at + batch_size]
            if budget == 0:
                continue
            ids = torch.tensor([prompts[i] for i in chunk], device=device)
            ended = None if stop is None else (
                lambda ids: torch.tensor([stop(t) for t in texts(ids, length)]))
            result = model.generate(ids, budget, eos_token_id=list(eos), stop=ended)
            for i, text in zip(chunk, texts(result, length)):
                out[i] = text
    return out


def read_completions(path: Path, benchmark: str, ids: Iterable[str]) -> dict[str, str]:
    """id -> completion from a JSONL of {"id", "completion"} lines. ValueError naming --completions when a
    line is malformed, an id is not an item of `benchmark` (e.g. a file written for another benchmark),
    or an item has two completions. Items without a line are scored as empty completions by the caller."""
    known = set(ids)
    out: dict[str, str] = {}
    for line, record in read_jsonl(path, "--completions"):
        if not isinstance(record, dict) or not isinstance(record.get("completion"), str) or "id" not in record:
            raise ValueError(f"--completions: {path} line {line}: expected {{\"id\", \"completion\": str}}")
        if record["id"] not in known:
            raise ValueError(f"--completions: {path} line {line}: id {record['id']!r} is not a {benchmark} item "
                             f"(a completions file for another benchmark?)")
        if record["id"] in out:
            raise ValueError(f"--completions: {path} line {line}: a second completion for {record['id']!r}")
        out[record["id"]] = record["completion"]
    return out


def completions(args, items: Sequence[dict], benchmark: str, *, canonical: Callable[[dict], str],
                prompt: Callable[[dict, object], list[int]], stop: Callable[[str], bool] | None = None,
                stop_tokens: Sequence[str] = ("<|im_end|>", "<|endoftext|>")) -> list[str]:
    """One completion per item, in order, from the source the arguments name: `canonical(item)` with
    --canonical; the --completions file (items it lacks get ""); else greedy decoding of
    `prompt(item, tokenizer)` by the --model, ending at the stop tokens or `stop(text)`."""
    if args.canonical:
        return [canonical(item) for item in items]
    if args.completions is not None:
        given = read_completions(args.completions, benchmark, (item["id"] for item in items))
        return [given.get(item["id"], "") for item in items]
    model, tokenizer = load_model(args.model)
    return greedy_batches(model, tokenizer, [prompt(item, tokenizer) for item in items], stop=stop,
                          max_new_tokens=args.max_new_tokens, eos=stop_ids(model, tokenizer, stop_tokens),
                          batch_size=args.batch_size)


def rates(rows: Sequence[dict], group: str, metrics: Sequence[str]) -> dict[str, dict]:
    """Per value of rows[group], in first-seen order: {"items", metric: mean of rows[metric]...}."""
    out = {}
    for name in dict.fromkeys(r[group] for r in rows):
        mine = [r for r in rows if r[group] == name]
        out[name] = {"items": len(mine), **{m: sum(float(r[m]) for r in mine) / len(mine) for m in metrics}}
    return out


def write_outputs(output: Path, items: Iterable[dict], summary: dict) -> dict:
    """OUTPUT/items.jsonl (one record per item) and OUTPUT/summary.json, each atomically; returns summary."""
    output.mkdir(parents=True, exist_ok=True)
    write_jsonl(output / "items.jsonl", items)
    write_atomic(output / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def add_source_arguments(parser, *, completions_help: str, limit: bool = True) -> None:
    """--model | --completions | --canonical (exactly one), --output, --batch-size, --max-new-tokens (and
    --limit): the arguments every evaluation takes."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="Hugging Face layout directory (config.json, weights, "
                                                   "tokenizer.json)")
    source.add_argument("--completions", type=Path, help=completions_help)
    source.add_argument("--canonical", action="store_true", help="score the reference answers as completions")
    parser.add_argument("--output", type=Path, required=True)
    if limit:
        parser.add_argument("--limit", type=int, default=None, help="only the first N items (quick runs)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows decoded together (equal-length prompts)")
    parser.add_argument("--max-new-tokens", type=int, default=128)


def check_limit(limit: int | None) -> int | None:
    if limit is not None and limit < 1:
        raise ValueError(f"--limit: expected a positive int, got {limit}")
    return limit
