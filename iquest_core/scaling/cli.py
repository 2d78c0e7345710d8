"""`iquest scaling fit` and `iquest scaling mix`: fit per-language laws, plan a mixture (the sweep of tiny
training runs that makes runs.csv is `iquest scaling sweep`, iquest_core.jobs.sweep).

    iquest scaling fit runs.csv --output DIR [--bootstrap 200]
        fits L = A N^-alpha + B D^-beta + E per language; writes DIR/law.json, DIR/loss.png, DIR/iso_loss.png
    iquest scaling mix --law law.json --params 7e9 --tokens 2e12 --languages python,java [--min-share 0.05]
        prints the optimal mixture (JSON) with its loss, the uniform mixture's and each single language's
    iquest scaling sweep --output DIR [--languages python,c,javascript] [--sizes 32x1,64x2,96x3]
        tiny real training runs (model sizes x token counts x languages) -> DIR/runs.csv, then `fit` on it
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from iquest_core.command_line import CommandParser, run_command
from iquest_core.scaling import io, plots
from iquest_core.scaling.fit import fit_power_law
from iquest_core.scaling.law import MultilingualLaw


def fit_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="iquest scaling fit", description="fit per-language laws to runs.csv")
    parser.add_argument("runs", type=Path, help="CSV with columns language, params, tokens, loss")
    parser.add_argument("--output", type=Path, required=True, help="folder for law.json and the plots")
    add_fit_options(parser)
    return parser


def mix_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="iquest scaling mix", description="optimal mixture under a law")
    parser.add_argument("--law", type=Path, required=True, help="law.json written by `fit`")
    parser.add_argument("--params", type=float, required=True, help="model parameters N")
    parser.add_argument("--tokens", type=float, required=True, help="training tokens D of the whole mixture")
    parser.add_argument("--languages", default=None, help="comma-separated languages (default: all in the law)")
    parser.add_argument("--min-share", type=float, default=0.0, help="smallest share of every listed language")
    parser.add_argument("--output", type=Path, default=None, help="also write mixture.json and mixture.png here")
    return parser


def add_fit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", type=int, default=200, help="resamples for confidence intervals (0: none)")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (sweep: and of every run)")


def fit_runs(runs_csv: Path, output: Path, bootstrap: int, confidence: float, seed: int) -> MultilingualLaw:
    """Fit every language of runs_csv; write output/law.json (no transfer: gamma 0, tau empty, as single-
    language runs cannot measure it), output/loss.png and output/iso_loss.png (uniform mixture)."""
    runs = io.read_runs(runs_csv)
    output.mkdir(parents=True, exist_ok=True)
    fits = {}
    for lang, r in runs.items():
        try:
            fits[lang] = fit_power_law(r["params"], r["tokens"], r["loss"], bootstrap=bootstrap,
                                       confidence=confidence, seed=seed)
        except ValueError as e:
            raise ValueError(f"{runs_csv}, language {lang!r}: {e}") from None
    law = MultilingualLaw(fits)
    io.save_law(output / "law.json", law)
    plots.plot_runs(runs, fits, output / "loss.png")
    params = np.concatenate([r["params"] for r in runs.values()])
    tokens = np.concatenate([r["tokens"] for r in runs.values()])
    uniform = {lang: 1 / len(fits) for lang in fits}
    plots.plot_iso_loss(lambda n, d: law.loss(n, d, uniform), (params.min() / 3, params.max() * 30),
                        (tokens.min() / 3, tokens.max() * 30), output / "iso_loss.png",
                        title="uniform mixture of " + ", ".join(fits))
    for lang, fit in fits.items():
        line = f"{lang:>12}: n={fit.n_points}"
        for name in ("A", "alpha", "B", "beta", "E"):
            value = getattr(fit, name)
            line += f"  {name}={value:.4g}"
            if name in fit.ci and name not in ("A", "B"):
                line += " [{:.4g}, {:.4g}]".format(*fit.ci[name])
        print(line)
    print(f"wrote {output / 'law.json'}, {output / 'loss.png'}, {output / 'iso_loss.png'}")
    return law


def mix(args: argparse.Namespace) -> dict:
    law = io.load_law(args.law)
    languages = None if args.languages is None else [s.strip() for s in args.languages.split(",") if s.strip()]
    best = law.optimal_mixture(args.params, args.tokens, languages=languages, min_share=args.min_share)
    uniform = {lang: 1 / len(best) for lang in best}
    report = {"params": args.params, "tokens": args.tokens, "min_share": args.min_share, "mixture": best,
              "loss": law.loss(args.params, args.tokens, best),
              "uniform_loss": law.loss(args.params, args.tokens, uniform),
              "single_language_loss": {lang: law.loss(args.params, args.tokens, {lang: 1.0}) for lang in best},
              "effective_tokens": law.effective_data(args.tokens, best),
              "coefficients": law.coefficients(best)}
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        io.write_atomic(args.output / "mixture.json", json.dumps(report, indent=2) + "\n")
        plots.plot_mixture(best, args.output / "mixture.png",
                           title=f"N={args.params:.3g}, D={args.tokens:.3g}: loss {report['loss']:.4g} "
                                 f"(uniform {report['uniform_loss']:.4g})")
    return report


def fit_main(argv: list[str] | None = None) -> int:
    args = fit_parser().parse_args(argv)

    def job() -> None:
        fit_runs(args.runs, args.output, args.bootstrap, args.confidence, args.seed)
    return run_command("iquest scaling fit", job)


def mix_main(argv: list[str] | None = None) -> int:
    args = mix_parser().parse_args(argv)
    return run_command("iquest scaling mix", lambda: print(json.dumps(mix(args), indent=2)))
