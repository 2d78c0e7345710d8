"""Accepted and rejected synthetic records, each with its reasons, written all at once.

    sink = RecordSink(guard)                       # guard: EvaluationGuard (or None: no decontamination)
    sink.offer(record, reasons=[], text=code)      # reasons empty: accept unless text is contaminated
    sink.write(out_dir)                            # accepted.jsonl, rejected.jsonl, summary.json

A record with any reason is rejected; a record without is checked against the evaluation guard on
`text` (default: the record as JSON) and rejected as "contaminated:verbatim:ID" / "contaminated:renamed:ID"
if it matches. Every rejected record carries {"reasons": [...]}. The three files are each written
atomically, summary.json last, so a reader who finds summary.json finds the two record files complete.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from iquest_core.atomic_io import write_atomic
from iquest_core.jsonl import write_jsonl


class RecordSink:
    def __init__(self, guard=None) -> None:
        self.guard = guard
        self.accepted: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []

    def offer(self, record: dict[str, Any], reasons: list[str], text: str | None = None) -> bool:
        """Keep record as accepted (True) or rejected with its reasons (False)."""
        reasons = list(reasons)
        if not reasons and self.guard is not None:
            found = self.guard.contaminated(text if text is not None else json.dumps(record, ensure_ascii=False))
            reasons = [f"contaminated:{r}" for r in found]
        if reasons:
            self.rejected.append({**record, "reasons": reasons})
            return False
        self.accepted.append(record)
        return True

    def summary(self) -> dict[str, Any]:
        total = len(self.accepted) + len(self.rejected)
        reasons = Counter(r.split(":")[0] for record in self.rejected for r in record["reasons"])
        return {"offered": total, "accepted": len(self.accepted), "rejected": len(self.rejected),
                "yield": round(len(self.accepted) / total, 4) if total else 0.0,
                "rejection_reasons": dict(sorted(reasons.items()))}

    def write(self, out_dir: str | Path) -> dict[str, Any]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_jsonl(out / "accepted.jsonl", self.accepted)
        write_jsonl(out / "rejected.jsonl", self.rejected)
        summary = self.summary()
        write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        return summary
