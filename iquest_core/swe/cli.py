"""`iquest swe ...`: SWE-RL tasks from git histories, their environments, validation; and `iquest rl`, which
runs the multi-turn SWE recipes (swe-tiny, or a .toml with stage = "swe-rl") here and every other recipe
in iquest_core.rl.cli.

    iquest swe env REPO_DIR --output ENV_DIR          the repository's declared requirements + pytest in a venv
    iquest swe mine REPO_DIR --output tasks.jsonl [--mode head|base] [--max-tasks N] [--env ENV_DIR] [--artifacts DIR]
    iquest swe validate tasks.jsonl --output DIR [--env ENV_DIR]   gold 3/3 and empty 0/3 -> DIR/tasks.jsonl
    iquest swe rollout tasks.jsonl --model HF_DIR --output DIR [--group G] [--max-turns T] [--temperature T]
                       [--top-p P] [--engine local|ray]
"""

from __future__ import annotations

import json
from pathlib import Path

from iquest_core.command_line import CommandParser
from iquest_core.jsonl import write_jsonl


def mine_main(argv: list[str]) -> int:
    parser = CommandParser(prog="iquest swe mine", description="SWE tasks from a git repository's history")
    parser.add_argument("repo", metavar="REPO_DIR")
    parser.add_argument("--output", required=True, help="tasks.jsonl (TASKS.summary.json is written beside it)")
    parser.add_argument("--mode", default="head", choices=("head", "base"))
    parser.add_argument("--max-tasks", type=int)
    parser.add_argument("--max-commits", type=int, help="look at the newest N first-parent commits only")
    parser.add_argument("--env", help="the repository's environment (iquest swe env); default: this interpreter")
    parser.add_argument("--commit-message", action="store_true", help="add the fix's subject to problem statements")
    parser.add_argument("--merges", action="store_true",
                        help="also mine merge commits, as their change against the first parent (pull requests)")
    parser.add_argument("--artifacts", help="a directory of untracked build outputs (e.g. a compiled extension at "
                                            "its package path) copied into every workspace")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    from iquest_core.atomic_io import write_atomic
    from iquest_core.swe import RepoEnvironment, mine_repository

    output = Path(args.output)
    if output.is_dir():
        raise ValueError(f"--output: {output} is a directory; expected a .jsonl path")
    report = mine_repository(args.repo, mode=args.mode, max_tasks=args.max_tasks, max_commits=args.max_commits,
                             environment=RepoEnvironment.load(args.env), commit_message=args.commit_message,
                             workers=args.workers, merges=args.merges, artifacts=args.artifacts)
    write_jsonl(output, [t.to_dict() for t in report.tasks])
    summary = json.dumps(report.summary())
    write_atomic(output.with_name(output.stem + ".summary.json"), summary + "\n")
    print(summary)
    return 0


def validate_main(argv: list[str]) -> int:
    parser = CommandParser(prog="iquest swe validate",
                           description="keep the tasks whose gold patch resolves 3/3 and empty patch 0/3")
    parser.add_argument("tasks", help="tasks.jsonl")
    parser.add_argument("--output", required=True,
                        help="directory for tasks.jsonl (the valid tasks), validation.jsonl and summary.json")
    parser.add_argument("--env", help="the repository's environment (iquest swe env); default: this interpreter")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    from iquest_core.swe import RepoEnvironment, load_tasks
    from iquest_core.swe.validate import validate_tasks

    tasks = load_tasks(args.tasks)
    print(json.dumps(validate_tasks(tasks, args.output, environment=RepoEnvironment.load(args.env),
                                    runs=args.runs, workers=args.workers)))
    return 0


def env_main(argv: list[str]) -> int:
    parser = CommandParser(prog="iquest swe env", description="a repository's declared requirements in a venv")
    parser.add_argument("repo", metavar="REPO_DIR")
    parser.add_argument("--output", required=True, help="the environment's directory (new or empty)")
    args = parser.parse_args(argv)
    from iquest_core.swe import create_environment
    from iquest_core.swe.gitrepo import check_repository

    env = create_environment(check_repository(args.repo), args.output)
    print(f"environment for {args.repo}: {env.prefix}")
    return 0


def rollout_main(argv: list[str]) -> int:
    parser = CommandParser(prog="iquest swe rollout", description="a policy's trajectories on tasks, scored")
    parser.add_argument("tasks", help="tasks.jsonl")
    parser.add_argument("--model", required=True, help="a Hugging Face model directory")
    parser.add_argument("--output", required=True, help="directory for trajectories.jsonl and summary.json")
    parser.add_argument("--group", type=int, default=4, help="trajectories per task")
    parser.add_argument("--max-turns", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=256, help="per turn")
    parser.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (0, 1]")
    parser.add_argument("--engine", default="local", choices=("local", "ray"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--instructions", help="the tool list after the problem statement (default: all tools)")
    args = parser.parse_args(argv)
    from iquest_core.rl.multiturn import RolloutLimits
    from iquest_core.swe import load_tasks
    from iquest_core.swe.rollout import load_policy, rollout_tasks

    tasks = load_tasks(args.tasks)
    model, tokenizer = load_policy(args.model)
    if not 0 < args.top_p <= 1 or args.temperature < 0:
        raise ValueError(f"--top-p, --temperature: expected (0, 1] and >= 0, got {args.top_p}, {args.temperature}")
    limits = RolloutLimits(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p)
    print(json.dumps(rollout_tasks(model, tokenizer, tasks, args.output, group=args.group, max_turns=args.max_turns,
                                   limits=limits, engine=args.engine, workers=args.workers,
                                   instructions=args.instructions)))
    return 0


def rl_main(argv: list[str]) -> int:
    """`iquest rl` over the toy RL recipes (iquest_core.rl.cli) and the SWE recipes (swe-tiny, or a .toml
    with stage = "swe-rl"); swe sits above rl, so the command's table entry points here."""
    from iquest_core.rl.cli import TOY, RecipeFamily, main
    from iquest_core.swe.recipe import BUNDLED, STAGE, load_swe_recipe

    def train(recipe, output, resume):
        from iquest_core.swe.train import train_swe
        return train_swe(recipe, output, resume)

    def plot(runs, path):
        from iquest_core.swe.plot import plot_records
        return plot_records(runs, path)

    swe = RecipeFamily(bundled=BUNDLED, stage=STAGE, load=load_swe_recipe, train=train, plot=plot,
                       metric="resolved_rate", metric_name="resolved")
    return main(argv, families=(TOY, swe))
