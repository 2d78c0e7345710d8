"""The text rules against datatrove's implementations of the same rules, on real documents.

    python bench/quality_agreement.py [N]      (datatrove and spaCy from the bench extra)

For each rule set: the share of documents where both give the same outcome (kept, or the same reason
code), once with the package's own word splitter and once with datatrove's (spaCy) words plugged in, which
isolates the rules from the tokenizer. Disagreements are listed by (ours, theirs).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from quality_corpus import documents  # noqa: E402

from iquest_core.data.quality import text_rules as tr  # noqa: E402


def datatrove_outcomes(texts: list[str]) -> dict[str, list[str]]:
    from datatrove.data import Document
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)

    filters = {"gopher_quality": GopherQualityFilter(), "gopher_repetition": GopherRepetitionFilter(),
               "c4": C4QualityFilter(), "fineweb": FineWebQualityFilter()}
    out = {}
    for name, f in filters.items():
        outcomes = []
        for i, text in enumerate(texts):
            result = f.filter(Document(text=text, id=str(i)))
            outcomes.append("kept" if result is True else result[1])
        out[name] = outcomes
    return out


def our_outcomes(texts: list[str], *, spacy_words: bool) -> dict[str, list[str]]:
    kwargs = {}
    sentences = None
    if spacy_words:
        from datatrove.utils.text import split_into_sentences, split_into_words
        kwargs = {"words": split_into_words}
        sentences = lambda line: len(split_into_sentences(line))  # noqa: E731
    configs = {"gopher_quality": tr.GopherQuality(**kwargs), "gopher_repetition": tr.GopherRepetition(**kwargs),
               "fineweb": tr.FineWebLines(**kwargs)}
    out = {name: [tr.TEXT_RULES[name][0](t, config) or "kept" for t in texts] for name, config in configs.items()}
    out["c4"] = [tr.c4_lines(t, tr.C4Quality(), sentences=sentences)[0] or "kept" for t in texts]
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    texts = [d["text"] for d in documents(n)]
    theirs = datatrove_outcomes(texts)
    print(f"{len(texts)} documents (stdlib docstrings, README files of installed packages)")
    print(f"{'rules':<20}{'words':<10}{'agree':>8}{'kept (ours/theirs)':>22}  top disagreements")
    for spacy_words in (False, True):
        ours = our_outcomes(texts, spacy_words=spacy_words)
        for name in theirs:
            pairs = list(zip(ours[name], theirs[name]))
            agree = sum(a == b for a, b in pairs) / len(pairs)
            kept = f"{ours[name].count('kept')}/{theirs[name].count('kept')}"
            worst = Counter((a, b) for a, b in pairs if a != b).most_common(3)
            print(f"{name:<20}{'spaCy' if spacy_words else 'regex':<10}{agree:>8.4f}{kept:>22}  {worst}")


if __name__ == "__main__":
    main()
