"""Files of the scaling tools: runs.csv (one training run per row) and law.json (a MultilingualLaw).

runs.csv has the columns language, params, tokens, loss (others are kept but unused by the fit).
law.json is {"per_language": {lang: {"A", "alpha", "B", "beta", "E", "ci"?, "confidence"?, "n_points"?}},
"tau": [[lang_i, lang_j, tau_ij], ...], "gamma": g}. Writes go to a temporary file renamed into place,
so a failed write leaves no truncated file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from iquest_core.atomic_io import write_atomic
from iquest_core.scaling.fit import PowerLawFit
from iquest_core.scaling.law import MultilingualLaw

RUN_COLUMNS = ("language", "params", "tokens", "loss")


def read_runs(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """runs.csv -> {language: {"params", "tokens", "loss": float64 arrays}}, languages in first-seen order;
    ValueError naming the file and row for a missing column or a value that is not a number > 0."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in RUN_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (expected {', '.join(RUN_COLUMNS)})")
        rows: dict[str, list[tuple[float, float, float]]] = {}
        for line, row in enumerate(reader, start=2):
            values = []
            for column in RUN_COLUMNS[1:]:
                try:
                    value = float(row[column])
                except (TypeError, ValueError):
                    value = float("nan")
                if not (np.isfinite(value) and value > 0):
                    raise ValueError(f"{path}, line {line}: {column} must be a number > 0, got {row[column]!r}")
                values.append(value)
            language = (row["language"] or "").strip()
            if not language:
                raise ValueError(f"{path}, line {line}: empty language")
            rows.setdefault(language, []).append(tuple(values))
    if not rows:
        raise ValueError(f"{path}: no runs")
    return {lang: dict(zip(RUN_COLUMNS[1:], np.array(r, dtype=np.float64).T)) for lang, r in rows.items()}


def write_runs(path: str | Path, rows: Iterable[Mapping[str, object]], columns: Iterable[str] = RUN_COLUMNS) -> None:
    """rows (dicts with at least `columns`) -> CSV at path, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, buffer.getvalue())


def fit_to_dict(fit: PowerLawFit) -> dict:
    out = {"A": fit.A, "alpha": fit.alpha, "B": fit.B, "beta": fit.beta, "E": fit.E, "n_points": fit.n_points}
    if fit.ci:
        out["ci"] = {name: list(bounds) for name, bounds in fit.ci.items()}
        out["confidence"] = fit.confidence
    return out


def fit_from_dict(data: Mapping, where: str = "fit") -> PowerLawFit:
    try:
        values = {name: float(data[name]) for name in ("A", "alpha", "B", "beta", "E")}
        ci = {name: (float(lo), float(hi)) for name, (lo, hi) in data.get("ci", {}).items()}
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: expected numbers A, alpha, B, beta, E (and ci pairs): {e!r}") from None
    return PowerLawFit(**values, ci=ci, confidence=data.get("confidence"), n_points=int(data.get("n_points", 0)))


def law_to_dict(law: MultilingualLaw) -> dict:
    return {"per_language": {lang: fit_to_dict(fit) for lang, fit in law.per_language.items()},
            "tau": [[i, j, t] for (i, j), t in law.tau.items()], "gamma": law.gamma}


def law_from_dict(data: Mapping) -> MultilingualLaw:
    if not isinstance(data, Mapping) or not isinstance(data.get("per_language"), Mapping):
        raise ValueError("law: expected an object with a per_language object")
    per_language = {lang: fit_from_dict(fit, f"law.per_language[{lang!r}]")
                    for lang, fit in data["per_language"].items()}
    tau = {}
    for entry in data.get("tau", []):
        if not (isinstance(entry, list) and len(entry) == 3):
            raise ValueError(f"law.tau: expected [language_i, language_j, tau] entries, got {entry!r}")
        tau[(entry[0], entry[1])] = float(entry[2])
    return MultilingualLaw(per_language, tau=tau, gamma=float(data.get("gamma", 0.0)))


def save_law(path: str | Path, law: MultilingualLaw) -> None:
    write_atomic(path, json.dumps(law_to_dict(law), indent=2) + "\n")


def load_law(path: str | Path) -> MultilingualLaw:
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not JSON ({e})") from None
    return law_from_dict(data)
