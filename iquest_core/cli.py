"""The `iquest` command: one table of subcommands, one error convention.

Every entry of COMMANDS maps a command path ("demo", "data fim", ...) to the `module:function` that
runs it (function `main` when omitted) and a one-line help. The function takes the remaining argv and
returns an exit status. Adding a command is one entry. Bad arguments and failed jobs print one line
`iquest <cmd>: error: ...` on stderr and exit with status 2 (`iquest_core.command_line`).
"""

from __future__ import annotations

import importlib
import sys

import iquest_core
from iquest_core.command_line import fail, run_command

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("iquest_core.jobs.demo", "train a tiny LoopCoder on the package's own sources"),
    "pipeline": ("iquest_core.jobs.pipeline", "the Code-Flow pipeline end to end on the package's sources"),
    "drill": ("iquest_core.jobs.drill", "silent-data-corruption drill"),
    "selftest": ("iquest_core.ops.selftest", "kernel self-test against the float64 reference"),
    "data run": ("iquest_core.data.jobs.run", "a data pipeline (steps over sharded inputs) from a TOML file"),
    "data fim": ("iquest_core.data.jobs.fim", "fill-in-the-middle examples (file and repository level)"),
    "data filter": ("iquest_core.data.jobs.filter", "drop files that do not parse (syntax validity)"),
    "data tokenize": ("iquest_core.data.jobs.tokenize", "token shards (uint32 .npy + document index)"),
    "data evolution": ("iquest_core.data.jobs.evolution", "repository-evolution triples from git history"),
    "data dedup": ("iquest_core.data.jobs.dedup", "exact and MinHash-LSH near-duplicate removal"),
    "data semdedup": ("iquest_core.data.jobs.semdedup", "embedding dedup (SemDeDup), after exact and MinHash"),
    "data decontam": ("iquest_core.data.jobs.decontam", "benchmark decontamination by n-gram overlap"),
    "data annotate": ("iquest_core.data.jobs.annotate", "teacher quality labels from an OpenAI-compatible LLM"),
    "data train-classifier": ("iquest_core.data.jobs.train_classifier",
                              "quality classifier: MiniLM embeddings + ridge head on teacher labels"),
    "train": ("iquest_core.train.cli", "stage recipes on one process or torchrun"),
    "export": ("iquest_core.train.export", "a training checkpoint to the Hugging Face layout"),
    "eval humaneval": ("iquest_core.eval.harness", "HumanEval pass@k"),
    "eval humaneval-infill": ("iquest_core.eval.infill", "HumanEval infilling (single-line, multi-line, span)"),
    "eval bfcl": ("iquest_core.eval.bfcl", "function calling: BFCL's AST categories (Python)"),
    "eval repo-completion": ("iquest_core.eval.repo_completion", "next-line completion in a repository, "
                                                                 "with and without cross-file context"),
    "rl": ("iquest_core.swe.cli:rl_main", "GRPO reinforcement learning with test-pass rewards (toy, swe-tiny)"),
    "scaling fit": ("iquest_core.scaling.cli:fit_main", "fit per-language scaling laws to runs.csv"),
    "scaling mix": ("iquest_core.scaling.cli:mix_main", "the optimal language mixture under a law"),
    "scaling sweep": ("iquest_core.jobs.sweep_cli", "tiny real training runs -> runs.csv, then the fit"),
    "swe env": ("iquest_core.swe.cli:env_main", "a repository's declared requirements in a venv of its own"),
    "swe mine": ("iquest_core.swe.cli:mine_main", "SWE tasks (FAIL_TO_PASS / PASS_TO_PASS) from git history"),
    "swe validate": ("iquest_core.swe.cli:validate_main", "gold patch resolves 3/3, empty patch 0/3"),
    "swe rollout": ("iquest_core.swe.cli:rollout_main", "a policy's multi-turn trajectories on tasks, scored"),
    "swe plot": ("iquest_core.swe.plot:plot_main", "resolved rate per GRPO step of runs, in one figure"),
    "serve": ("iquest_core.serve.server", "the package's model behind the OpenAI API (batched)"),
    "synth code": ("iquest_core.synth.cli:code_main", "test-driven code synthesis (CodeT dual agreement)"),
    "synth perturb": ("iquest_core.synth.cli:perturb_main", "renamed/reordered/re-parameterised verified problems"),
    "synth reverse": ("iquest_core.synth.cli:reverse_main", "reverse flow: statements for verified code, re-solved"),
    "synth math": ("iquest_core.synth.cli:math_main", "math solutions checked symbolically against gold answers"),
    "synth debate": ("iquest_core.synth.cli:debate_main", "preference pairs judged by N debating judges"),
}


def resolve(name: str):
    """The function of command `name` (a key of COMMANDS)."""
    module, _, function = COMMANDS[name][0].partition(":")
    return getattr(importlib.import_module(module), function or "main")


def usage(group: str = "") -> str:
    """The listing of the commands under `group` ("" for all)."""
    prefix = f"{group} " if group else ""
    rows = [f"    iquest {name:<16} {help}" for name, (_, help) in COMMANDS.items() if name.startswith(prefix)]
    return f"usage: iquest {prefix}COMMAND [ARGS ...]   (iquest {prefix}COMMAND --help)\n\n" + "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--version"]:
        print(f"iquest {iquest_core.__version__}")
        return 0
    for length in (2, 1):
        name = " ".join(argv[:length])
        if len(argv) >= length and name in COMMANDS:
            return run_command(f"iquest {name}", lambda: resolve(name)(argv[length:]))
    group = argv[0] if argv and any(n.startswith(f"{argv[0]} ") for n in COMMANDS) else ""
    helping = argv[len(group.split()):][:1] in (["-h"], ["--help"])
    print(usage(group), file=sys.stdout if helping else sys.stderr)
    if helping:
        return 0
    if argv[len(group.split()):]:
        return fail(f"iquest {group}".strip(), f"unknown command {' '.join(argv[len(group.split()):][:1])!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
