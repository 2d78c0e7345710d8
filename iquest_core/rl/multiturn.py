"""Multi-turn rollouts of a tool-using policy: one token sequence per trajectory.

A trajectory is the chat of data/chat.py as token ids, built turn by turn and never re-tokenized:

    [<|im_start|>user\\n{observation 0}<|im_end|>\\n<|im_start|>assistant\\n]          prompt        mask 0
    [action 1 ... <|im_end|>]                                                       sampled ids   mask 1
    [\\n<|im_start|>tool\\n<tool_response>\\n{observation 1}\\n</tool_response><|im_end|>\\n
     <|im_start|>assistant\\n]                                                       observation   mask 0
    [action 2 ... <|im_end|>] ...

The mask is 1 exactly on the model's own tokens, each turn's <|im_end|> included; old_logprobs holds the
log-probability of each sampled token under the sampling policy (temperature applied), recorded when it
was sampled. An action is the JSON of the reply's first `<tool_call>` ({"name": TOOL, "arguments": {...}});
a reply without a valid one is sent to the environment as a malformed action (an error observation).

Each turn every live trajectory is generated in one batched call per context length (the model's generate
takes unpadded rows of one length); as soon as a batch is sampled, its tool calls start on the worker
pool while the next batch generates. A trajectory ends when its environment says done, or when its
generated tokens reach max_tokens or its context max_context (then the harness submits).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from iquest_core.data.chat import Tokenizer, message_body

_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)


@dataclass
class Trajectory:
    task_index: int
    ids: list[int]
    mask: list[bool]
    old_logprobs: list[float]
    prompt_len: int
    turns: int = 0
    generated: int = 0
    done: bool = False
    r_test: float | None = None   # None: not scored (infrastructure error, verifier timeout, dropped)
    resolved: bool = False
    error: str = ""
    reward: float | None = None
    replies: list[str] = field(default_factory=list)  # each agent turn's text, <|im_end|> excluded


def parse_tool_call(text: str) -> Any:
    """The environment action {"tool": NAME, **arguments} of a reply, or the reply text itself when it has no
    valid tool call (the environment answers that with an error observation)."""
    found = _TOOL_CALL.search(text)
    if not found:
        return "no <tool_call> in the reply"
    try:
        call = json.loads(found.group(1))
    except json.JSONDecodeError as e:
        return f"the tool call is not JSON ({e.msg})"
    if not isinstance(call, dict) or not isinstance(call.get("arguments", {}), dict) or "name" not in call:
        return 'a tool call is {"name": TOOL, "arguments": {...}}'
    return {**call.get("arguments", {}), "tool": call["name"]}


class TurnCodec:
    """Token ids of the chat pieces around the agent's turns (the data/chat.py template)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.start, self.end = tokenizer.special_id("<|im_start|>"), tokenizer.special_id("<|im_end|>")
        self.reply_header = [self.start, *tokenizer.encode("assistant\n")]

    def prompt(self, observation: str) -> list[int]:
        return [self.start, *self.tokenizer.encode("user\n" + observation), self.end, *self.tokenizer.encode("\n"),
                *self.reply_header]

    def observation(self, text: str) -> list[int]:
        body = message_body({"role": "tool", "content": text}, "instruct")
        return [*self.tokenizer.encode("\n"), self.start, *self.tokenizer.encode("tool\n" + body), self.end,
                *self.tokenizer.encode("\n"), *self.reply_header]


def is_extension(previous: Sequence[int], sampled: Sequence[int], following: Sequence[int]) -> bool:
    """Whether the next step's context starts with the previous context and the sampled ids unchanged."""
    n, m = len(previous), len(sampled)
    return (len(following) >= n + m and list(following[:n]) == list(previous)
            and list(following[n:n + m]) == list(sampled))


@torch.no_grad()
def sample_turns(model, contexts: list[list[int]], *, max_new_tokens: int, end_id: int, temperature: float,
                 generator: torch.Generator | None, on_batch: Callable[[list[int], list[tuple]], None],
                 top_p: float = 1.0) -> None:
    """Sample one reply per context (temperature 0: greedy, log-probs at temperature 1; top_p < 1: from the
    nucleus, log-probs still of the whole distribution at the temperature, as the loss computes them), one
    generate call per context length; on_batch(indices, samples) is called after each call with (ids,
    logprobs) per row, cut after the first end_id."""
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, context in enumerate(contexts):
        by_length[len(context)].append(i)
    for length, indices in sorted(by_length.items()):
        prompt = torch.tensor([contexts[i] for i in indices])
        ids, logits = model.generate(prompt, max_new_tokens, do_sample=temperature > 0, temperature=temperature or 1.0, top_p=top_p,
                                     eos_token_id=end_id, generator=generator, return_logits=True)
        new = ids[:, length:]
        logprobs = torch.log_softmax(logits / (temperature or 1.0), -1).gather(-1, new[..., None])[..., 0]
        samples = []
        for row, lp in zip(new.tolist(), logprobs.tolist()):
            cut = row.index(end_id) + 1 if end_id in row else len(row)
            samples.append((row[:cut], lp[:cut]))
        on_batch(indices, samples)


@dataclass
class RolloutLimits:
    max_new_tokens: int = 256      # per turn
    max_tokens: int = 2048         # generated per trajectory
    max_context: int = 4096
    temperature: float = 1.0
    top_p: float = 1.0             # nucleus sampling


def rollout(model, codec: TurnCodec, envs: Sequence[Any], task_indices: Sequence[int], limits: RolloutLimits,
            pool: ThreadPoolExecutor, generator: torch.Generator | None = None) -> list[Trajectory]:
    """Run one episode in each env (objects with reset() -> str and step(action) -> StepResult) with the
    policy model; returns the trajectories, r_test/resolved/error filled from the final step."""
    trajectories = []
    for env_index, prompt in zip(task_indices, pool.map(lambda env: env.reset(), envs)):
        ids = codec.prompt(prompt)
        trajectories.append(Trajectory(env_index, ids, [False] * len(ids), [0.0] * len(ids), len(ids)))
    while live := [i for i, t in enumerate(trajectories) if not t.done]:
        pending: list[tuple[int, list[int], Future]] = []

        def act(indices: list[int], samples: list[tuple]) -> None:
            for k, (sampled, logprobs) in zip(indices, samples):
                i = live[k]
                t = trajectories[i]
                t.ids += sampled
                t.mask += [True] * len(sampled)
                t.old_logprobs += logprobs
                t.turns += 1
                t.generated += len(sampled)
                text = codec.tokenizer.decode(sampled[:-1] if sampled[-1:] == [codec.end] else sampled)
                t.replies.append(text)
                budget_left = (t.generated < limits.max_tokens
                               and len(t.ids) < limits.max_context - limits.max_new_tokens)
                action = parse_tool_call(text) if budget_left else {"tool": "submit"}
                pending.append((i, sampled, pool.submit(envs[i].step, action)))

        sample_turns(model, [trajectories[i].ids for i in live], max_new_tokens=limits.max_new_tokens,
                     end_id=codec.end, temperature=limits.temperature, generator=generator, on_batch=act,
                     top_p=limits.top_p)
        for i, sampled, future in pending:
            _observe(trajectories[i], sampled, future.result(), codec)
    return trajectories


def _observe(t: Trajectory, sampled: list[int], result, codec: TurnCodec) -> None:
    if result.done:
        t.done = True
        t.r_test, t.resolved = result.reward, bool(result.info.get("resolved"))
        t.error = result.info.get("infra_error", "")
        return
    previous = t.ids[:len(t.ids) - len(sampled)]
    following = t.ids + codec.observation(result.observation)
    if not is_extension(previous, sampled, following):
        t.done, t.r_test, t.error = True, None, "the next context does not extend the sampled ids"
        return
    added = following[len(t.ids):]
    t.ids = following
    t.mask += [False] * len(added)
    t.old_logprobs += [0.0] * len(added)
