"""line_length: drops files that look generated or minified by their line lengths (the heuristic of The
Stack / StarCoder data: a longest line above `max_line` characters or a mean line length above
`max_mean`). Outcomes: kept, dropped:longest_line, dropped:mean_line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from iquest_core.data.steps import Doc, ShardContext, register


@register
@dataclass
class LineLength:
    name: ClassVar[str] = "line_length"
    max_line: int = 1000
    max_mean: float = 100.0

    def __post_init__(self) -> None:
        if isinstance(self.max_line, bool) or not isinstance(self.max_line, int) or self.max_line < 1:
            raise ValueError(f"max_line: expected an int >= 1, got {self.max_line!r}")
        if isinstance(self.max_mean, bool) or not isinstance(self.max_mean, (int, float)) or not self.max_mean > 0:
            raise ValueError(f"max_mean: expected a number > 0, got {self.max_mean!r}")

    def run(self, docs: Iterator[Doc], ctx: ShardContext) -> Iterator[Doc]:
        for doc in docs:
            lengths = [len(line) for line in doc["content"].splitlines()] or [0]
            if max(lengths) > self.max_line:
                ctx.count("dropped:longest_line")
            elif sum(lengths) / len(lengths) > self.max_mean:
                ctx.count("dropped:mean_line")
            else:
                ctx.count("kept")
                yield doc
