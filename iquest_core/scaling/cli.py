"""`iquest scaling`: fit per-language laws, plan a mixture, run a sweep of tiny training runs.

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
import sys
import time
from pathlib import Path

import numpy as np

from iquest_core.scaling import io, plots
from iquest_core.scaling.fit import fit_power_law
from iquest_core.scaling.law import MultilingualLaw
from iquest_core.scaling.sweep import LANGUAGES, Grid, run_sweep


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="iquest scaling", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser("fit", help="fit per-language laws to runs.csv")
    fit.add_argument("runs", type=Path, help="CSV with columns language, params, tokens, loss")
    fit.add_argument("--output", type=Path, required=True, help="folder for law.json and the plots")
    add_fit_options(fit)

    mix = commands.add_parser("mix", help="optimal mixture under a law")
    mix.add_argument("--law", type=Path, required=True, help="law.json written by `fit`")
    mix.add_argument("--params", type=float, required=True, help="model parameters N")
    mix.add_argument("--tokens", type=float, required=True, help="training tokens D of the whole mixture")
    mix.add_argument("--languages", default=None, help="comma-separated languages (default: all in the law)")
    mix.add_argument("--min-share", type=float, default=0.0, help="smallest share of every listed language")
    mix.add_argument("--output", type=Path, default=None, help="also write mixture.json and mixture.png here")

    sweep = commands.add_parser("sweep", help="tiny real training runs -> runs.csv, then the fit",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    grid = Grid()
    sweep.add_argument("--output", type=Path, required=True, help="folder for data, runs, runs.csv, law.json, plots")
    sweep.add_argument("--languages", default=",".join(grid.languages), help=f"comma-separated, from {', '.join(LANGUAGES)}")
    sweep.add_argument("--sizes", default=",".join(f"{h}x{n}" for h, n in grid.sizes),
                       help="comma-separated HIDDENxLAYERS model sizes")
    sweep.add_argument("--tokens", default=",".join(map(str, grid.tokens)), help="comma-separated tokens per run")
    sweep.add_argument("--batch-tokens", type=int, default=grid.batch_tokens, help="tokens per optimizer step")
    sweep.add_argument("--lr", type=float, default=grid.lr, help="peak learning rate of the cosine schedule")
    sweep.add_argument("--corpus-bytes", type=float, default=grid.corpus_bytes, help="training text per language")
    sweep.add_argument("--eval-tokens", type=int, default=grid.eval_tokens, help="held-out tokens per language")
    sweep.add_argument("--jobs", type=int, default=grid.jobs, help="runs at a time")
    sweep.add_argument("--threads", type=int, default=grid.threads, help="threads per run")
    add_fit_options(sweep)
    return parser.parse_args(argv)


def _size(text: str) -> tuple[int, int]:
    hidden, layers = text.split("x")  # ValueError unless exactly HIDDENxLAYERS
    return int(hidden), int(layers)


def sweep_grid(args: argparse.Namespace) -> Grid:
    """The Grid of the `sweep` arguments; ValueError naming a malformed list."""

    def items(name: str, convert):
        try:
            return tuple(convert(s.strip()) for s in getattr(args, name).split(",") if s.strip())
        except ValueError:
            raise ValueError(f"--{name}: cannot read {getattr(args, name)!r}") from None

    return Grid(languages=items("languages", str), sizes=items("sizes", _size),
                tokens=items("tokens", lambda s: int(float(s))), batch_tokens=args.batch_tokens, lr=args.lr,
                corpus_bytes=int(args.corpus_bytes), eval_tokens=args.eval_tokens, seed=args.seed, jobs=args.jobs,
                threads=args.threads)


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "fit":
            fit_runs(args.runs, args.output, args.bootstrap, args.confidence, args.seed)
        elif args.command == "mix":
            print(json.dumps(mix(args), indent=2))
        else:
            grid = sweep_grid(args)
            began = time.perf_counter()
            runs_csv = run_sweep(args.output, grid)
            print(f"{runs_csv}: {len(grid.languages) * len(grid.sizes) * len(grid.tokens)} runs, "
                  f"{time.perf_counter() - began:.0f} s")
            fit_runs(runs_csv, args.output, args.bootstrap, args.confidence, args.seed)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"iquest scaling {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
