"""Teacher labels from an LLM behind an OpenAI-compatible endpoint, one rubric per domain.

    labels = annotate(client, documents, domain="code")      # [(id, score or None)], input order

Each document is one chat request: the rubric as the system message, the document (cut to max_chars) as
the user message; the reply's last "Score: N" (N a number from 0 to 5) is the label. Retries, timeouts and
the concurrency limit are the client's (iquest_core.serve.client.ChatClient).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

RUBRICS: dict[str, str] = {
    "general": ("Rate the document's value for training a language model on a 0-5 scale: information "
                "density, educational value (does it teach something clearly), coherence, and absence of "
                "toxicity, spam and boilerplate. 0 = useless or harmful, 5 = excellent textbook-like text."),
    "code": ("Rate the code's value for training a code model on a 0-5 scale: correctness, readability, "
             "meaningful names and comments, self-contained logic, educational value; 0 = generated, "
             "minified, data-only or broken, 5 = clear idiomatic code worth learning from."),
    "math": ("Rate the document's value for training on mathematics on a 0-5 scale: correct reasoning, "
             "complete derivations, clear notation, educational value; 0 = no mathematics or wrong, "
             "5 = a clear, correct worked explanation."),
}
INSTRUCTION = "\nThink briefly, then end your answer with a line 'Score: N' where N is an integer from 0 to 5."
_SCORE = re.compile(r"score\s*[:=]\s*\**\s*([0-5](?:\.\d+)?)", re.I)


def parse_score(reply: str) -> float | None:
    """The last "Score: N" (0 <= N <= 5) in the reply, None when there is none."""
    found = _SCORE.findall(reply)
    return float(found[-1]) if found else None


def messages(text: str, domain: str, max_chars: int) -> list[dict[str, str]]:
    if domain not in RUBRICS:
        raise ValueError(f"domain: unknown domain {domain!r}; expected one of {sorted(RUBRICS)}")
    return [{"role": "system", "content": RUBRICS[domain] + INSTRUCTION},
            {"role": "user", "content": f"Document:\n{text[:max_chars]}"}]


def annotate(client, documents: Sequence[tuple[str, str]], *, domain: str = "general",
             max_chars: int = 6000, max_tokens: int = 256) -> list[tuple[str, float | None]]:
    """[(id, score)] for (id, text) documents; score None when the reply holds no score."""
    conversations = [messages(text, domain, max_chars) for _, text in documents]
    replies = client.chat_many(conversations, max_tokens=max_tokens, temperature=0.0)
    return [(doc_id, parse_score(reply)) for (doc_id, _), reply in zip(documents, replies)]
