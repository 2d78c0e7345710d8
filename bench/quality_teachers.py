"""The two teachers of bench/quality_classifiers.py. NEITHER IS AN LLM (none is reachable offline); each
stands in for one part of an LLM judge's rubric, from facts that neither student gets as features.

rubric (0..5 points; high quality >= 3) on the documents of quality_corpus.frozen_corpus:
    2 points  the document comes from the Python standard library (curated, reviewed documentation);
              third-party docstrings and README chunks get 0 (the source is not in the text given)
    1 point   each of the Gopher quality, Gopher repetition and FineWeb line rule sets passed (3 points)
    It mixes provenance (topic and style of curated docs) with surface statistics that n-grams see.

coherence (1 intact, 0 spliced; high quality = 1) on coherence_corpus(frozen_corpus(n)):
    Every document that has at least two paragraphs (or sentences) is kept whole, or, for a seeded half,
    spliced: its first half (cut at the paragraph, else sentence, boundary nearest its middle) followed by
    the second half of another document of the same source from another file, picked among the 20 of
    nearest length (so length, style and vocabulary of the source do not tell the two apart).
    An LLM judge of quality scores coherence (does the text stay on one subject and follow through): a
    spliced document reads fluently sentence by sentence but changes subject half way. The label is a
    fact of the construction, not of any feature: only a reader of the meaning of both halves can tell.
"""

from __future__ import annotations

import re

import numpy as np

from iquest_core.data.quality import filters

RUBRIC_CUT = 3.0
COHERENCE_CUT = 0.5
NEAREST = 20
BOUNDARIES = (re.compile(r"\n\s*\n"), re.compile(r"(?<=[.!?])\s+"))


def rubric(doc: dict) -> float:
    rules = filters.text_reasons(doc["text"], ["gopher_quality", "gopher_repetition", "fineweb"])
    return 2.0 * (doc["source"] == "stdlib") + 3 - len(rules)


def coherence(doc: dict) -> float:
    return 0.0 if doc["spliced"] else 1.0


def halves(text: str) -> tuple[str, str] | None:
    """`text` cut at the paragraph boundary nearest its middle (else the sentence boundary), the separator
    kept with the second half; None when it has a single segment."""
    for boundary in BOUNDARIES:
        cuts = [m.start() for m in boundary.finditer(text) if text[:m.start()].strip() and text[m.end():].strip()]
        if cuts:
            cut = min(cuts, key=lambda c: abs(c - len(text) / 2))
            return text[:cut], text[cut:]
    return None


def source_file(doc_id: str) -> str:
    """The file (or package README) a document of quality_corpus came from: the first two id fields."""
    return ":".join(doc_id.split(":")[:2])


def coherence_corpus(docs: list[dict], *, seed: int = 0) -> list[dict]:
    """The documents with two segments or more, each intact or (a seeded half) spliced as the module
    docstring says; {"id", "source", "text", "spliced"}. The id of a spliced document is "head+tail"."""
    rng = np.random.default_rng(seed)
    cut = {d["id"]: halves(d["text"]) for d in docs}
    eligible = [d for d in docs if cut[d["id"]]]
    by_source: dict[str, list[dict]] = {}
    for doc in eligible:
        by_source.setdefault(doc["source"], []).append(doc)
    out = []
    for doc in eligible:
        if rng.random() < 0.5:
            out.append({**doc, "spliced": False})
            continue
        others = [d for d in by_source[doc["source"]] if source_file(d["id"]) != source_file(doc["id"])]
        lengths = np.abs(np.array([len(d["text"]) for d in others]) - len(doc["text"]))
        other = others[int(rng.choice(np.argsort(lengths, kind="stable")[:NEAREST]))]
        out.append({"id": f"{doc['id']}+{other['id']}", "source": doc["source"], "spliced": True,
                    "text": cut[doc["id"]][0] + cut[other["id"]][1]})
    return out


TEACHERS = {"rubric": (rubric, RUBRIC_CUT), "coherence": (coherence, COHERENCE_CUT)}
