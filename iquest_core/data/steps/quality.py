"""The quality steps of `iquest data run` (iquest_core.data.quality):

    heuristic_filter   rule_sets, drop      code rules for files in syntax.LANGUAGES, else the text rule sets
                                            (Gopher quality/repetition, C4, FineWeb); "quality_reasons" lists
                                            the failed rules; drop=false keeps every document, annotated;
                                            outcomes kept / dropped:<rule set>:<reason> (first reason)
    boilerplate_clean                       removes boilerplate lines of web text (code_rules.BOILERPLATE);
                                            outcomes removed:<pattern> per line, kept per document
    code_blocks        min_chars            "code_blocks": [{kind, start, end, language, error_share,
                                            definitions, damage, valid}] of the code found in text documents;
                                            outcomes blocks:<language> / invalid_blocks
    quality_score      head, model, drop    "quality_score" from a head of `iquest data train-classifier` on
                                            the encoder's embeddings of the document's windows, pooled as
                                            the head records; drop=true drops documents under the
                                            head's threshold; outcomes kept / dropped:quality_score
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from iquest_core.data.quality import ast_check, filters
from iquest_core.data.quality.code_rules import clean_boilerplate
from iquest_core.data.steps import Doc, ShardContext, register

BATCH = 64


@register
@dataclass
class HeuristicFilter:
    name: ClassVar[str] = "heuristic_filter"
    rule_sets: list[str] = field(default_factory=lambda: list(filters.TEXT_RULE_SETS))
    drop: bool = True

    def __post_init__(self) -> None:
        filters.check_rule_sets(self.rule_sets)

    def run(self, docs: Iterator[Doc], ctx: ShardContext) -> Iterator[Doc]:
        for doc in docs:
            reasons = filters.document_reasons(doc["path"], doc["content"], self.rule_sets)
            ctx.count(f"dropped:{reasons[0]}" if reasons else "kept")
            if not reasons or not self.drop:
                yield {**doc, "quality_reasons": reasons}


@register
@dataclass
class BoilerplateClean:
    name: ClassVar[str] = "boilerplate_clean"

    def run(self, docs: Iterator[Doc], ctx: ShardContext) -> Iterator[Doc]:
        for doc in docs:
            text, removed = clean_boilerplate(doc["content"])
            for pattern, count in removed.items():
                ctx.count(f"removed:{pattern}", count)
            ctx.count("kept")
            yield {**doc, "content": text}


@register
@dataclass
class CodeBlocks:
    name: ClassVar[str] = "code_blocks"
    min_chars: int = ast_check.MIN_BLOCK_CHARS

    def run(self, docs: Iterator[Doc], ctx: ShardContext) -> Iterator[Doc]:
        for doc in docs:
            found = []
            for block in ast_check.code_blocks(doc["content"], min_chars=self.min_chars):
                check = ast_check.validate(block.code)
                found.append({"kind": block.kind, "start": block.start, "end": block.end, "info": block.info,
                              **dataclasses.asdict(check)})
                ctx.count(f"blocks:{check.language}" if check.valid else "invalid_blocks")
            yield {**doc, "code_blocks": found}


@functools.lru_cache(maxsize=2)
def _scorer(head: str, model: str | None):
    from iquest_core.data.quality import encoder
    from iquest_core.data.quality.classifier import RidgeHead

    return RidgeHead.load(head), encoder.load_encoder(model)


@register
@dataclass
class QualityScore:
    name: ClassVar[str] = "quality_score"
    head: str = ""
    model: str | None = None
    drop: bool = True

    def __post_init__(self) -> None:
        if not self.head:
            raise ValueError("head: the quality_score step needs the path of a trained head (.npz)")

    def run(self, docs: Iterator[Doc], ctx: ShardContext) -> Iterator[Doc]:
        from iquest_core.data.quality import windows

        head, model = _scorer(self.head, self.model)
        batch: list[Doc] = []
        for doc in docs:
            batch.append(doc)
            if len(batch) == BATCH:
                yield from self._score(batch, head, model, windows, ctx)
                batch = []
        yield from self._score(batch, head, model, windows, ctx)

    def _score(self, batch, head, model, windows, ctx) -> Iterator[Doc]:
        if not batch:
            return
        texts = [d["content"] for d in batch]
        scores = head.predict(windows.embed_documents(model, texts, head.meta.get("pooling", "first"),
                                                      max_windows=head.meta.get("max_windows", 8)))
        for doc, score in zip(batch, scores):
            keep = score >= head.threshold
            ctx.count("kept" if keep else "dropped:quality_score")
            if keep or not self.drop:
                yield {**doc, "quality_score": float(score)}
