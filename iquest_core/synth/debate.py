"""Subjective judgement by debate: N judges compare two candidate answers in rounds and vote.

    verdict = debate(question, answer_a, answer_b, judges, rounds=3)
    verdict.winner   # 0 (the first answer), 1 (the second) or None (no majority)

A judge is a callable messages -> text (e.g. `lambda m: client.chat(m, temperature=0)` for any endpoint);
its text must end with a line "VERDICT: 1" or "VERDICT: 2" (which shown answer is better) or "VERDICT: TIE".

Order swapping: in every round each judge sees the pair in both orders. Its vote counts only when the
two readings name the same answer; otherwise (position bias) it abstains that round. A vote is therefore
a function of the answers, not of the order they were given in, and so is the verdict.

Rounds: in round r > 1 each judge also sees every judge's previous-round votes and reasons (the debate).
Early stop: as soon as one answer has the votes of a strict majority of the N judges, it wins. After
`rounds` rounds without one, there is no winner.

`debate_pipeline` turns prompts into preference pairs {"prompt", "chosen", "rejected"} this way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from iquest_core.serve.client import EndpointError

Judge = Callable[[list[dict[str, str]]], str]
_VERDICT = re.compile(r"VERDICT:\s*(1|2|TIE)\s*$", re.IGNORECASE)


@dataclass
class Verdict:
    winner: int | None
    rounds: int
    votes: list[list[int | None]] = field(default_factory=list)   # per round, per judge: 0, 1 or None


def _prompt(question: str, first: str, second: str, transcript: str) -> list[dict[str, str]]:
    text = (f"Question:\n{question}\n\nAnswer 1:\n{first}\n\nAnswer 2:\n{second}\n\n"
            + (f"Previous round:\n{transcript}\n\n" if transcript else "")
            + "Which answer is better? Give your reasons, then end with 'VERDICT: 1', 'VERDICT: 2' or 'VERDICT: TIE'.")
    return [{"role": "system", "content": "You are a careful, impartial judge."}, {"role": "user", "content": text}]


def _reading(text: str) -> str | None:
    found = _VERDICT.search(text.strip())
    return found.group(1).upper() if found else None


def _vote(judge: Judge, question: str, answers: tuple[str, str], transcript: str) -> tuple[int | None, str]:
    """The judge's vote as an answer index (0, 1) or None (tie, unreadable, or different in the two orders)."""
    straight = judge(_prompt(question, answers[0], answers[1], transcript))
    swapped = judge(_prompt(question, answers[1], answers[0], transcript))
    a, b = _reading(straight), _reading(swapped)
    first = {"1": 0, "2": 1}.get(a or "")
    second = {"1": 1, "2": 0}.get(b or "")
    return (first if first is not None and first == second else None), straight


def debate(question: str, answer_a: str, answer_b: str, judges: list[Judge], *, rounds: int = 3) -> Verdict:
    """The debate's verdict (module docstring)."""
    if not judges:
        raise ValueError("judges: expected at least one judge")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds: expected an int >= 1, got {rounds!r}")
    # Canonical order, so that what judges see (and the transcript) does not depend on the caller's order.
    answers, flipped = (answer_a, answer_b), answer_b < answer_a
    if flipped:
        answers = (answer_b, answer_a)
    verdict, transcript = Verdict(None, 0), ""
    for r in range(1, rounds + 1):
        results = [_vote(judge, question, answers, transcript) for judge in judges]
        votes = [vote for vote, _ in results]
        verdict.votes.append([None if v is None else v ^ flipped for v in votes])
        verdict.rounds = r
        for side in (0, 1):
            if votes.count(side) * 2 > len(judges):
                verdict.winner = side ^ flipped
                return verdict
        transcript = "\n".join(f"Judge {i + 1}: {'tie' if v is None else 'answer ' + '12'[v]}: {reason[-400:]}"
                               for i, (v, reason) in enumerate(results))
    return verdict


def debate_pipeline(prompts, client, sink, *, judges: int = 3, rounds: int = 3, max_tokens: int = 512) -> None:
    """Two sampled answers per {"id", "prompt"}; `judges` judges on client's endpoint (sampling with seeds
    0..judges-1) debate them; the winner is the chosen answer of a preference pair offered to sink."""
    panel = [lambda messages, seed=seed: client.chat(messages, temperature=0.7, seed=seed, max_tokens=max_tokens)
             for seed in range(judges)]
    for item in prompts:
        record = {"kind": "debate", "id": item["id"], "prompt": item["prompt"]}
        try:
            a, b = client.chat_many([[{"role": "user", "content": item["prompt"]}]] * 2, temperature=1.0,
                                    max_tokens=max_tokens)
            verdict = None if a == b else debate(item["prompt"], a, b, panel, rounds=rounds)
        except EndpointError as error:
            sink.offer(record, [f"endpoint-error:{error}"])
            continue
        if verdict is None:
            sink.offer(record, ["identical-candidates"])
        elif verdict.winner is None:
            sink.offer({**record, "votes": verdict.votes}, ["no-consensus"])
        else:
            chosen, rejected = (a, b) if verdict.winner == 0 else (b, a)
            sink.offer({**record, "chosen": chosen, "rejected": rejected, "rounds": verdict.rounds}, [],
                       text=item["prompt"] + "\n" + chosen)
