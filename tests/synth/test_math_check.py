"""The symbolic checker against 213 hand-labelled pairs and against math-verify (the reference parser)."""

import pytest
from math_verify import parse, verify

from iquest_core.synth.math_check import answers_match, final_answer, normalise
from tests.synth.math_pairs import GROUPS, labelled_pairs

PAIRS = labelled_pairs()


def reference_parse(text: str):
    return parse(text if "$" in text or "boxed" in text or "answer" in text.lower() else f"${text}$")


def test_at_least_200_pairs_cover_every_category():
    assert len(PAIRS) >= 200
    assert set(GROUPS) == {"fractions", "decimals", "latex", "intervals", "sets_and_tuples", "units",
                           "equations_and_answers"}
    assert sum(label for *_, label in PAIRS) > 80 and sum(not label for *_, label in PAIRS) > 80


def test_agreement_with_the_labels_is_at_least_99_percent():
    wrong = [(g, p, label) for _, g, p, label in PAIRS if answers_match(g, p) != label]
    assert len(wrong) <= 0.01 * len(PAIRS), wrong


def test_agreement_with_math_verify_where_it_parses_is_at_least_99_percent():
    compared = disagree = 0
    for _, gold, pred, _ in PAIRS:
        g, p = reference_parse(gold), reference_parse(pred)
        if g and p:
            compared += 1
            disagree += verify(g, p) != answers_match(gold, pred)
    assert compared >= 190 and disagree <= 0.01 * compared


def test_string_match_is_a_weaker_baseline():
    """Control: the labels need more than normalised string equality."""
    agree = sum((normalise(final_answer(g)) == normalise(final_answer(p))) == label for _, g, p, label in PAIRS)
    assert agree < 0.8 * len(PAIRS)


@pytest.mark.parametrize("text, answer", [(r"so $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
                                          (r"\boxed{\{1, 2\}} and \boxed{7}", "7"),
                                          ("The answer is: 12 cm.", "12 cm"), ("42", "42")])
def test_final_answer(text, answer):
    assert final_answer(text) == answer


def test_unparseable_answers_compare_as_strings():
    assert answers_match("((", "((") and not answers_match("((", "))")
