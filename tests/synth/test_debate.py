"""Debate with scripted judges: order invariance, majority, early stop, position bias neutralised."""

import itertools

import pytest

from iquest_core.synth.debate import debate

GOOD, BAD = "Paris is the capital of France.", "Lyon is the capital of France."


def prefers(text):
    """A judge that votes for the shown answer containing `text` (a tie when neither does)."""
    def judge(messages):
        body = messages[-1]["content"]
        first = body.split("Answer 1:\n")[1].split("\n\nAnswer 2:")[0]
        second = body.split("Answer 2:\n")[1].split("\n\n")[0]
        side = "1" if text in first else "2" if text in second else "TIE"
        return f"reasons...\nVERDICT: {side}"
    judge.calls = 0
    return judge


def always_first(messages):
    return "VERDICT: 1"


def persuadable(messages):
    """Ties in round 1; in later rounds follows the previous round's majority in the transcript."""
    body = messages[-1]["content"]
    if "Previous round" not in body:
        return "VERDICT: TIE"
    return prefers("Paris")(messages)


@pytest.mark.parametrize("judges", [
    [prefers("Paris")] * 3,
    [prefers("Paris"), prefers("Paris"), prefers("Lyon")],
    [prefers("Paris"), always_first, always_first],
    [prefers("Paris"), persuadable, always_first],
])
def test_verdict_is_invariant_to_candidate_order(judges):
    forward = debate("Capital of France?", GOOD, BAD, judges)
    backward = debate("Capital of France?", BAD, GOOD, judges)
    assert (forward.winner, backward.winner) in ((0, 1), (None, None))
    assert forward.rounds == backward.rounds


def test_majority_wins_and_stops_early():
    counted = []

    def counting(messages):
        counted.append(1)
        return prefers("Paris")(messages)
    verdict = debate("q", GOOD, BAD, [counting, counting, prefers("Lyon")], rounds=5)
    assert verdict.winner == 0 and verdict.rounds == 1 and len(counted) == 4  # 2 judges x 2 orders, one round
    assert verdict.votes == [[0, 0, 1]]


def test_position_biased_judges_abstain_and_no_majority_means_no_winner():
    verdict = debate("q", GOOD, BAD, [always_first] * 3, rounds=2)
    assert verdict.winner is None and verdict.rounds == 2 and verdict.votes == [[None] * 3] * 2


def test_persuasion_across_rounds():
    verdict = debate("q", GOOD, BAD, [persuadable, persuadable, prefers("Paris")], rounds=3)
    assert verdict.winner == 0 and verdict.rounds == 2 and verdict.votes[0] == [None, None, 0]


def test_tie_split_has_no_winner():
    for a, b in itertools.permutations([GOOD, BAD]):
        assert debate("q", a, b, [prefers("Paris"), prefers("Lyon")], rounds=2).winner is None


def test_bad_arguments():
    with pytest.raises(ValueError, match="^judges:"):
        debate("q", "a", "b", [])
    with pytest.raises(ValueError, match="^rounds:"):
        debate("q", "a", "b", [always_first], rounds=0)
