"""`iquest data annotate DOCS.jsonl --endpoint URL --model NAME --output labels.jsonl`: teacher labels.

Asks an LLM served behind an OpenAI-compatible endpoint (vLLM, SGLang, `iquest serve`, a provider) to
score each document 0-5 with the rubric of --domain (general, code, math; iquest_core.data.quality.
annotate). Writes {"id", "score"} lines (the input's --id-key value) for `iquest data train-classifier`;
documents whose reply holds no score are counted and left out. An unreachable endpoint or a request that
keeps failing after the client's retries stops the job with one line naming the URL; nothing is written.
"""

from __future__ import annotations

import argparse
from collections import Counter

from iquest_core.command_line import CommandParser
from iquest_core.data.jobs import Summary, run_main
from iquest_core.data.quality.annotate import RUBRICS, annotate
from iquest_core.jsonl import read_jsonl, write_jsonl


def read_texts(path: str, id_key: str, text_key: str) -> list[tuple[str, str]]:
    """(id, text) of every record of a JSONL file; ValueError naming the file and line otherwise."""
    out = []
    for number, record in read_jsonl(path, "docs"):
        doc_id = record.get(id_key) if isinstance(record, dict) else None
        text = record.get(text_key) if isinstance(record, dict) else None
        if not isinstance(doc_id, str) or not isinstance(text, str):
            raise ValueError(f"docs: line {number} of {path} needs string {id_key!r} and {text_key!r} fields")
        out.append((doc_id, text))
    return out


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="iquest data annotate", description=__doc__.split("\n\n")[0])
    p.add_argument("docs", help="JSONL of documents")
    p.add_argument("--endpoint", required=True, help="the API's base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", required=True, help="the served model's name")
    p.add_argument("--output", required=True, help="labels JSONL: {id, score}")
    p.add_argument("--domain", choices=sorted(RUBRICS), default="general", help="rubric")
    p.add_argument("--id-key", default="path", help="the document id field")
    p.add_argument("--text-key", default="content", help="the document text field")
    p.add_argument("--api-key", default=None, help="bearer token, if the endpoint wants one")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    p.add_argument("--retries", type=int, default=4, help="retries per request (backoff doubling)")
    p.add_argument("--max-chars", type=int, default=6000, help="characters of each document sent")
    return p


def run(args: argparse.Namespace) -> Summary:
    from iquest_core.serve.client import ChatClient, EndpointError

    documents = read_texts(args.docs, args.id_key, args.text_key)
    with ChatClient(args.endpoint, args.model, api_key=args.api_key, timeout_s=args.timeout,
                    max_retries=args.retries, concurrency=args.concurrency) as client:
        try:
            labels = annotate(client, documents, domain=args.domain, max_chars=args.max_chars)
        except EndpointError as error:
            raise ValueError(f"endpoint: {error}") from None
    write_jsonl(args.output, ({"id": i, "score": s} for i, s in labels if s is not None))
    return Summary(len(documents), Counter("labelled" if s is not None else "no_score" for _, s in labels))


def main(argv: list[str] | None = None) -> int:
    return run_main("iquest data annotate", parser(), run, argv)
