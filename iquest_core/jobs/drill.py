"""`iquest drill`: the silent-data-corruption drill (what it does: `iquest_core.reliability.drill.runner`)."""

from __future__ import annotations

import json
import sys

from iquest_core.command_line import CommandParser
from iquest_core.atomic_io import write_atomic
from iquest_core.reliability.drill import SITES, format_table, measure_overhead, run_drill


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="iquest drill", description=__doc__.split("\n")[0])
    parser.add_argument("--faults", type=int, default=1000, help="injected faults, spread over the sites (1000)")
    parser.add_argument("--clean-steps", type=int, default=1000,
                        help="clean guarded steps with the default thread count, and as many with 2 threads (1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check-every", type=int, default=1, help="the guard's check interval (1)")
    parser.add_argument("--replicas", type=int, default=2, help="simulated data-parallel replicas (2)")
    parser.add_argument("--overhead-rounds", type=int, default=0,
                        help="also time the guard on small-cpu and a larger shape, this many rounds (0: skip)")
    parser.add_argument("--json", default="sdc-drill.json", help="where to write the report (sdc-drill.json)")
    parser.add_argument("--sites", default=",".join(SITES),
                        help=f"comma-separated fault sites to spread the faults over ({','.join(SITES)})")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    for name, low in (("faults", 0), ("clean_steps", 0), ("check_every", 1), ("replicas", 2), ("overhead_rounds", 0)):
        if getattr(args, name) < low:
            parser.error(f"--{name.replace('_', '-')}: expected an integer >= {low}, got {getattr(args, name)}")
    sites = tuple(s.strip() for s in args.sites.split(",") if s.strip())
    if not sites or set(sites) - set(SITES):
        parser.error(f"--sites: expected names from {','.join(SITES)}, got {args.sites!r}")
    report = run_drill(faults=args.faults, clean_steps=args.clean_steps, seed=args.seed, check_every=args.check_every,
                       replicas=args.replicas, progress=not args.no_progress, sites=sites)
    if args.overhead_rounds:
        report["overhead"] = measure_overhead(args.overhead_rounds)
    print(format_table(report))
    write_atomic(args.json, json.dumps(report, indent=2))
    print(f"report written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
