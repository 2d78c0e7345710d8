"""JSON Lines files: one JSON value per line, UTF-8. Writing is atomic (a reader never sees half a file);
reading names the file, the line and who asked (`where`, e.g. the argument or recipe key) on bad input."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from iquest_core.atomic_io import atomic_path


def write_jsonl(path: str | Path, records: Iterable[Any]) -> int:
    """Write records as JSON lines (UTF-8, not ASCII-escaped) to path atomically, creating its folder;
    returns the number of records."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def read_jsonl(path: str | Path, where: str) -> Iterator[tuple[int, Any]]:
    """(line number, value) for every non-blank line of path, in order. ValueError starting with
    "{where}: " for a file that cannot be read as UTF-8 or a line that is not JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{where}: line {number} of {path} is not JSON ({error.msg})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{where}: cannot read {path} ({error})") from None
