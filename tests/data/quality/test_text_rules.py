"""Each text rule on a document built to trip it and not the other rules of its set, against a base
document that passes all four rule sets."""

import dataclasses

import pytest

from iquest_core.data.quality import filters
from iquest_core.data.quality import text_rules as tr

BASE = "\n".join([
    "The river that runs through the old town has shaped its streets for centuries.",
    "Merchants built their houses along the banks to be close to the boats and the market.",
    "In spring the water rises with melting snow from the mountains to the north.",
    "Engineers later added stone walls and a series of locks to control the floods.",
    "Today the embankment is a quiet walk lined with chestnut trees and small cafes.",
    "Visitors often stop at the museum, which tells how the bridges were designed and rebuilt.",
    "Local schools bring their pupils here to learn about trade, transport and history.",
])


def test_base_document_passes_every_rule_set():
    assert filters.text_reasons(BASE) == []


def _only(config, field_name):
    """`config` with every optional threshold but `field_name` switched off."""
    off = {f.name: None for f in dataclasses.fields(config) if f.name not in (field_name, "words")
           and f.name not in ("top_n_grams", "dup_n_grams")}
    if hasattr(config, "top_n_grams"):
        off["top_n_grams"] = config.top_n_grams if field_name == "top_n_grams" else ()
        off["dup_n_grams"] = config.dup_n_grams if field_name == "dup_n_grams" else ()
    return dataclasses.replace(config, **off)


def _without(config, field_name):
    return dataclasses.replace(config, **{field_name: () if field_name.endswith("n_grams") else None})


GOPHER_QUALITY_CASES = [
    ("min_doc_words", "gopher_short_doc", "The cat sat on the mat with the dog."),
    ("max_doc_words", "gopher_long_doc", " ".join(["the river and the town"] * 20001)),
    ("min_avg_word_length", "gopher_below_avg_threshold", " ".join(["a to be of it"] * 15)),
    ("max_avg_word_length", "gopher_above_avg_threshold", BASE.replace(" ", " internationalization ")),
    ("max_symbol_word_ratio", "gopher_too_many_hashes", BASE + "\n" + "#" * 40),
    ("max_bullet_lines_ratio", "gopher_too_many_bullets", "\n".join("- " + line for line in BASE.split("\n"))),
    ("max_ellipsis_lines_ratio", "gopher_too_many_end_ellipsis", BASE.replace(".\n", " and so on...\n")),
    ("min_alpha_words_ratio", "gopher_below_alpha_threshold", BASE + "\n" + " ".join(map(str, range(60)))),
    ("min_stop_words", "gopher_enough_stop_words", " ".join(["river town bridge market"] * 20)),
]


@pytest.mark.parametrize("field_name, code, text", GOPHER_QUALITY_CASES, ids=[c[1] for c in GOPHER_QUALITY_CASES])
def test_gopher_quality_rule_trips_alone(field_name, code, text):
    config = tr.GopherQuality()
    assert tr.gopher_quality(text, _only(config, field_name)) == code
    assert tr.gopher_quality(BASE, _only(config, field_name)) is None
    if code not in ("gopher_short_doc", "gopher_too_many_hashes"):  # (hashes: 40 "#" are also symbol words)
        assert tr.gopher_quality(text, _without(config, field_name)) is None


REPEATED = BASE.split("\n")
GOPHER_REPETITION_CASES = [
    ("dup_para_frac", "dup_para_frac", "\n\n".join([REPEATED[0], REPEATED[0], REPEATED[1]])),
    ("dup_para_char_frac", "dup_para_char_frac", "\n\n".join(["\n".join(REPEATED[:3])] * 2 + REPEATED[3:7])),
    ("dup_line_frac", "dup_line_frac", "\n".join(REPEATED[:3] + REPEATED[:2])),
    ("dup_line_char_frac", "dup_line_char_frac", "\n".join(REPEATED + REPEATED[:2])),
    ("top_n_grams", "top_2_gram", BASE + " " + "old town " * 80),
    ("dup_n_grams", "duplicated_5_n_grams", BASE + "\nAs we said, " + REPEATED[0] + " " + REPEATED[1]),
]


@pytest.mark.parametrize("field_name, code, text", GOPHER_REPETITION_CASES,
                         ids=[c[1] for c in GOPHER_REPETITION_CASES])
def test_gopher_repetition_rule_trips_alone(field_name, code, text):
    config = tr.GopherRepetition()
    assert tr.gopher_repetition(text, _only(config, field_name)) == code
    assert tr.gopher_repetition(BASE, _only(config, field_name)) is None


def test_repeated_ngram_chars_never_counts_a_character_twice():
    words = ["a", "b"] * 50
    assert tr._repeated_ngram_chars(words, 5) <= len("".join(words))
    assert tr._repeated_ngram_chars(list("abcdefghij"), 5) == 0


@pytest.mark.parametrize("code, text", [
    ("lorem_ipsum", BASE + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit."),
    ("curly_bracket", BASE + "\nThe config is written as {key: value} in this file."),
    ("too_few_sentences", "\n".join(line.rstrip(".") for line in REPEATED[:3]) + "\n" + "\n".join(REPEATED[3:5])),
])
def test_c4_page_rules(code, text):
    assert tr.c4_quality(text) == code


def test_c4_line_rules_drop_lines_not_pages():
    noisy = BASE + "\nPlease enable JavaScript to view the comments.\nRead our privacy policy and terms of use.\n" \
                   "Menu\nSee the city guide [1] for more.\nA trailing ellipsis line is dropped..."
    reason, kept = tr.c4_lines(noisy)
    assert reason is None
    assert kept == REPEATED + ["See the city guide  for more."]


@pytest.mark.parametrize("code, text", [
    ("line_punct_ratio", BASE.replace(".", "")),
    ("short_line_ratio", "\n".join(REPEATED[:2] + ["A short line.", "Another one.", "And a third.", "Fourth.", "Fifth."])),
    ("char_dup_ratio", BASE + "\n" + REPEATED[0]),
    ("list_ratio", "Items are listed here.\n" + "\n".join(f"The {word} is one item in this long list." for word in
                                                         ["apple", "pear", "plum", "fig", "lime", "kiwi"]) + "\n" * 30),
])
def test_fineweb_line_rules(code, text):
    assert tr.fineweb_lines(text) == code


def test_reason_codes_are_prefixed_and_rule_sets_checked():
    assert filters.text_reasons("Menu", ["fineweb", "c4"]) == ["fineweb:line_punct_ratio", "c4:too_few_sentences"]
    with pytest.raises(ValueError, match="rule_sets"):
        filters.text_reasons(BASE, ["gopher"])


def test_split_words_follows_spacy_on_common_cases():
    assert tr.split_words("Don't stop (e.g. here)... well-known `x`.") == [
        "Do", "n't", "stop", "(", "e.g.", "here", ")", "...", "well", "-", "known", "`", "x", "`", "."]
