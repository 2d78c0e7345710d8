"""The drill's report: counts by site, bit field and optimizer kind, and the printed table."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from iquest_core.reliability.drill.sites import SITES
from iquest_core.reliability.faults import FIELDS


@dataclass
class SiteCounts:
    injected: int = 0
    effective: int = 0
    masked: int = 0
    detected_before_update: int = 0
    detected_later: int = 0
    missed: int = 0

    def add(self, record: dict) -> None:
        self.injected += 1
        if record["effective"]:
            self.effective += 1
            setattr(self, record["outcome"], getattr(self, record["outcome"]) + 1)
        else:
            self.masked += 1


def summarise(records: list[dict], clean_runs: list[dict], false_positive_messages: list[str],
              sites: tuple[str, ...] = SITES) -> dict:
    """sites: site -> {injected, effective, masked, detected_before_update, detected_later, missed,
    by_field: field -> the same counts (by_kind: "update"/"state" -> the same, for the optimizer),
    latency_steps: latency -> count (detected effective faults),
    detected_by: check kind -> count, masked_flagged: masked faults the guard raised on anyway};
    false_positives, clean_steps, clean_runs; missed_faults: the records of missed effective faults."""
    summary = {}
    for site in sites:
        mine = [r for r in records if r["site"] == site]
        counts = SiteCounts()
        by_field: dict[str, SiteCounts] = {}
        for r in mine:
            counts.add(r)
            by_field.setdefault(r["field"] or "unknown", SiteCounts()).add(r)
        by_kind: dict[str, SiteCounts] = {}
        for r in mine:
            if r["kind"] is not None:
                by_kind.setdefault(r["kind"], SiteCounts()).add(r)
        detected = [r for r in mine if r["effective"] and r["outcome"] != "missed"]
        summary[site] = {**vars(counts), "by_field": {f: vars(c) for f, c in sorted(by_field.items(), key=_field_order)},
                         **({"by_kind": {k: vars(c) for k, c in sorted(by_kind.items())}} if by_kind else {}),
                         "latency_steps": dict(sorted(Counter(r["latency"] for r in detected).items())),
                         "detected_by": dict(Counter(r["detected_by"] for r in detected)),
                         "masked_flagged": sum(1 for r in mine if not r["effective"] and r["flagged"]),
                         "rolled_back_clean": sum(1 for r in detected if r.get("rolled_back", True)),
                         "named_fault_step": sum(1 for r in detected if r.get("named_step", True))}
    return {"sites": summary, "false_positives": len(false_positive_messages),
            "clean_steps": sum(run["steps"] for run in clean_runs), "clean_runs": clean_runs,
            "false_positive_messages": false_positive_messages,
            "missed_faults": [r for r in records if r["effective"] and r["outcome"] == "missed"]}


def _field_order(item) -> int:
    order = (*FIELDS, "header", "unknown")
    return order.index(item[0]) if item[0] in order else len(order)


def format_table(report: dict) -> str:
    head = f"{'site':<19}{'injected':>9}{'effective':>10}{'masked':>8}{'before upd':>11}{'later':>7}{'missed':>8}" \
           f"{'detected':>10}"
    lines = [head]

    def row(label: str, c: dict) -> str:
        rate = (c["detected_before_update"] + c["detected_later"]) / c["effective"] if c["effective"] else float("nan")
        return (f"{label:<19}{c['injected']:>9}{c['effective']:>10}{c['masked']:>8}{c['detected_before_update']:>11}"
                f"{c['detected_later']:>7}{c['missed']:>8}{rate:>10.1%}")

    for site, c in report["sites"].items():
        lines.append(row(site, c))
    totals: dict[str, dict] = {}
    for c in report["sites"].values():
        for f, fc in c["by_field"].items():
            t = totals.setdefault(f, dict.fromkeys(fc, 0))
            for k, v in fc.items():
                t[k] += v
    lines.append("by bit field, all sites:")
    for f, c in sorted(totals.items(), key=_field_order):
        lines.append(row(f"  {f}", c))
    latencies = Counter()
    for c in report["sites"].values():
        latencies.update({int(k): v for k, v in c["latency_steps"].items()})
    lines.append(f"detection latency (steps after the fault): {dict(sorted(latencies.items()))}; check_every="
                 f"{report['check_every']}, {report['replicas']} replicas")
    runs = ", ".join(f"{r['false_positives']}/{r['steps']} with {r['threads']} threads" for r in report["clean_runs"])
    lines.append(f"false positives over clean steps: {runs}")
    if "overhead" in report:
        for shape in report["overhead"]:
            lines.append(f"overhead {shape['shape']}: plain step {shape['plain_ms']:.1f} ms; always-on "
                         f"{shape['always_on']:+.1%} (its fingerprints alone {shape['always_on_fingerprint_ms']:.1f} ms"
                         f" = {shape['always_on_fingerprint_share']:.2%}); check step (replay) "
                         f"{shape['check_step']:+.1%}")
    return "\n".join(lines)
