"""The Code-Flow pipeline in miniature, on real code this machine has: this repository's sources and git
history and the Python standard library. Each stage's output feeds the next:

    corpus      repository files + stdlib modules -> corpus/*.jsonl (path, content, repo)
    data tools  data pipelines (iquest_core.data.pipeline, in this process): syntax_filter (tree-sitter
                validity) -> dedup (exact + MinHash-LSH) -> decontam (HumanEval n-grams) per
                corpus -> data/{repo,stdlib}.clean/; fim on the repository's   -> data/fim/
    tokenizer   byte-level BPE trained on the kept files            -> tokenizer/
    shards      iquest data tokenize: general (stdlib), code (repository), fim; commits (evolution
                triples of this repository's history)                -> shards/*
    pretrain    recipe "pretrain" scaled down: stdlib + code shards, warm-up-stable-decay
    anneal      recipe "anneal": the repository's code only, cosine decay
    midtrain    recipe "midtrain-32k" scaled down: FIM, commits, agent trajectories (tool calls on the
                repository's files, with a corrected mistake) and longer rows
    sft         recipe "sft-instruct": chat records (docstring -> function), assistant-only loss,
                cosine with a low-LR tail, 3-stage curriculum by function length
    export      the last checkpoint in the Hugging Face layout (+ tokenizer), then sampled completions

    python -m iquest_core.jobs.pipeline --output runs/codeflow [--scale 1.0]

Every stage is `iquest train --recipe R --set ...` with the overrides printed; the model is the tiny
LoopCoder of the `tiny` recipe. OUTPUT/loss.png plots all stages' losses; a stage whose output
exists is skipped, so a re-run continues where it stopped.
"""

from __future__ import annotations

import ast
import random
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from iquest_core.command_line import CommandParser
import iquest_core
from iquest_core.jsonl import read_jsonl, write_jsonl
from iquest_core.train.metrics import plot_stages, read_metrics
from iquest_core.train.recipe import load_recipe
from iquest_core.train.trainer import train

MODEL = ["model.preset=tiny", "model.init_from=", "model.vocab_size=1024", "model.hidden_size=96",
         "model.intermediate_size=256", "model.num_hidden_layers=2", "model.num_attention_heads=4",
         "model.num_key_value_heads=2", "model.head_dim=24", "model.loop_num=2", "model.loop_window_size=32",
         "model.max_position_embeddings=2048", "model.tie_word_embeddings=true"]
SMALL_RUN = ["train.activation_checkpointing=false", "train.micro_batch_rows=0", "guard.check_every=0",
             "keep_checkpoints=1"]
TEXT_SUFFIXES = {".py", ".md", ".toml", ".sh", ".cpp", ".h", ".cu", ".txt", ".cfg", ".yml", ".yaml"}
SUMMARY_STEPS = 10  # the summary's losses are means over this many first / last steps


def log(message: str) -> None:
    print(f"\n== {message}", flush=True)


def repo_root() -> Path | None:
    """This repository's work tree, when the package runs from a git checkout."""
    here = Path(iquest_core.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return Path(out)


def collect_corpus(out: Path, scale: float) -> tuple[Path, Path]:
    """corpus/repo.jsonl (the repository's tracked text files, or the package's files outside a checkout)
    and corpus/stdlib.jsonl (standard-library modules, largest first up to a byte budget)."""
    root = repo_root()
    if root is not None:
        names = subprocess.run(["git", "-C", str(root), "ls-files"], capture_output=True, text=True,
                               check=True).stdout.split()
        files = [root / n for n in names if Path(n).suffix in TEXT_SUFFIXES]
        base = root
    else:
        base = Path(iquest_core.__file__).parent.parent
        files = sorted(Path(iquest_core.__file__).parent.rglob("*.py"))
    repo = [{"path": str(f.relative_to(base)), "content": f.read_text(encoding="utf-8", errors="replace"),
             "repo": "iquest-core"} for f in files if f.is_file() and f.stat().st_size < 200_000]
    stdlib_dir = Path(sysconfig.get_paths()["stdlib"])
    budget, stdlib = int(2_000_000 * scale), []
    for f in sorted(stdlib_dir.glob("*.py"), key=lambda p: (-p.stat().st_size, p.name)):
        if budget <= 0:
            break
        text = f.read_text(encoding="utf-8", errors="replace")
        stdlib.append({"path": f"Lib/{f.name}", "content": text, "repo": "cpython"})
        budget -= len(text)
    (out / "corpus").mkdir(parents=True, exist_ok=True)
    print(f"{len(repo)} repository files ({sum(len(r['content']) for r in repo):,} chars), {len(stdlib)} stdlib "
          f"modules ({sum(len(r['content']) for r in stdlib):,} chars) from {stdlib_dir}")
    paths = out / "corpus" / "repo.jsonl", out / "corpus" / "stdlib.jsonl"
    write_jsonl(paths[0], repo)
    write_jsonl(paths[1], stdlib)
    return paths


def tokenize_job(sources: list[Path], tokenizer: Path, target: Path) -> None:
    """`iquest data tokenize SOURCES --tokenizer TOKENIZER --output TARGET --workers 2`, in this process."""
    from iquest_core.data.jobs import tokenize

    argv = [*map(str, sources), "--tokenizer", str(tokenizer), "--output", str(target), "--workers", "2"]
    print("$ iquest data tokenize " + " ".join(argv), flush=True)
    tokenize.run(tokenize.parser().parse_args(argv)).print("iquest data tokenize")


def shard_files(docs: Path) -> list[Path]:
    """The JSONL files of a data stage's output: the file itself, or a pipeline directory's shards in order."""
    return sorted(docs.glob("shard-*.jsonl")) if docs.is_dir() else [docs]


def records(docs: Path) -> Iterator[dict]:
    for path in shard_files(docs):
        for _, record in read_jsonl(path, "pipeline data"):
            yield record


def data_pipeline(sources: list[Path], target: Path, steps: list[dict]) -> Path:
    """Run (or resume, or find done) one data pipeline in this process; its output directory."""
    from iquest_core.data.pipeline import Pipeline, run_pipeline
    from iquest_core.data.steps import make_step

    print(f"$ iquest data run: {' '.join(map(str, sources))} -> {target}: " + " -> ".join(
        " ".join([s["name"], *(f"{k}={v}" for k, v in s.items() if k != "name")]) for s in steps), flush=True)
    pipeline = Pipeline([str(s) for s in sources], str(target), [make_step(s) for s in steps], output_format="jsonl")
    run_pipeline(pipeline, workers=2).print(f"data {target.name}")
    return target


def run_data_tools(out: Path, repo: Path, stdlib: Path) -> dict[str, Path]:
    """Each corpus through syntax filter -> exact + near dedup -> decontamination (one pipeline each)."""
    steps = [{"name": "syntax_filter", "max_error_share": 0.02}, {"name": "dedup"},
             {"name": "decontam", "benchmarks": ["humaneval"]}]
    return {name: data_pipeline([source], out / "data" / f"{name}.clean", steps)
            for name, source in (("repo", repo), ("stdlib", stdlib))}


def build_tokenizer(out: Path, docs: dict[str, Path], vocab_size: int) -> Path:
    from iquest_core.data.tokenizer import train_tokenizer

    target = out / "tokenizer"
    if not (target / "tokenizer.json").is_file():
        texts = [record["content"] for p in docs.values() for record in records(p)]
        train_tokenizer(texts, vocab_size=vocab_size).save(target)
        print(f"byte-level BPE, {vocab_size} tokens, trained on {len(texts)} files -> {target}")
    return target


def build_shards(out: Path, docs: dict[str, Path], tokenizer: Path) -> dict[str, Path]:
    shards = out / "shards"
    shards.mkdir(exist_ok=True)
    fim = data_pipeline(shard_files(docs["repo"]), out / "data" / "fim", [
        {"name": "fim", "fim_rate": 1.0, "repo_level_rate": 0.3, "tokenizer": str(tokenizer), "context_tokens": 384}])
    inputs = {"general": docs["stdlib"], "code": docs["repo"], "fim": fim}
    for name, source in inputs.items():
        if not (shards / name / "index.json").is_file():
            tokenize_job(shard_files(source), tokenizer, shards / name)
    commits = shards / "commits"
    if not (commits / "index.json").is_file():
        build_commit_shards(commits, tokenizer)
    return {**{name: shards / name for name in inputs}, "commits": commits}


def build_commit_shards(target: Path, tokenizer_dir: Path) -> None:
    """Repository-evolution triples of this repository's history (start commit, patch, end commit),
    formatted by data.evolution and written as a token shard directory."""
    from iquest_core.data import evolution
    from iquest_core.data.shards import write_index, write_shard
    from iquest_core.data.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    root = repo_root()
    docs = []
    if root is not None:
        for t in evolution.triples(root, seed=0, max_triples=24):
            try:
                docs.append(tok.encode_parts(evolution.format_triple_parts(t, tok, budget_tokens=1024)))
            except ValueError:
                continue  # the patch alone exceeds the budget
    if not docs:  # outside a git checkout: the shard still exists so that the mixture is the same
        docs = [tok.encode("no repository history available")]
    target.mkdir(parents=True)
    entry = write_shard(target, "shard-00000", docs)
    write_index(target, [entry], vocab_size=tok.vocab_size)
    print(f"{len(docs)} evolution triples of this repository's history -> {target}")


def functions_of(docs: Path) -> list[tuple[str, str, str, str]]:
    """(path, name, first docstring line, source) of every documented Python function in docs (a JSONL
    file or a data pipeline's output directory)."""
    found = []
    for record in records(docs):
        if not record["path"].endswith(".py"):
            continue
        try:
            tree = ast.parse(record["content"])
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(node):
                source = ast.get_source_segment(record["content"], node)
                if source and len(source) < 3000:
                    found.append((record["path"], node.name, ast.get_docstring(node).split("\n")[0], source))
    return found


def build_chat_data(out: Path, docs: dict[str, Path]) -> tuple[Path, Path]:
    """data/agent.jsonl (tool-use trajectories with a corrected mistake) and data/sft.jsonl (docstring ->
    function chat records with a difficulty: the function's length in lines / 60, at most 1)."""
    rng = random.Random(0)
    functions = functions_of(docs["repo"]) + functions_of(docs["stdlib"])
    agent, sft = [], []
    for path, name, doc, source in functions:
        wrong = path.replace("/", "/old_", 1) if "/" in path else f"old_{path}"
        agent.append({"messages": [
            {"role": "user", "content": f"What does `{name}` in the repository do?"},
            {"role": "assistant", "content": f"Let me read {wrong}.",
             "tool_calls": [{"name": "read_file", "arguments": {"path": wrong}}]},
            {"role": "tool", "content": f"error: {wrong}: no such file"},
            {"role": "assistant", "content": f"That path does not exist; `{name}` is in {path}.",
             "tool_calls": [{"name": "read_file", "arguments": {"path": path}}]},
            {"role": "tool", "content": source},
            {"role": "assistant", "content": doc}]})
        sft.append({"messages": [{"role": "user", "content": f"Write the Python function `{name}`: {doc}"},
                                 {"role": "assistant", "content": f"```python\n{source}\n```"}],
                    "difficulty": min(1.0, source.count("\n") / 60)})
    rng.shuffle(agent)
    rng.shuffle(sft)
    print(f"{len(functions)} documented functions -> {len(agent)} agent trajectories, {len(sft)} SFT records")
    paths = out / "data" / "agent.jsonl", out / "data" / "sft.jsonl"
    write_jsonl(paths[0], agent)
    write_jsonl(paths[1], sft)
    return paths


def sources(*specs: tuple[Path, float]) -> str:
    return "data.sources=[" + ", ".join(f'{{path="{p}", weight={w}}}' for p, w in specs) + "]"


def run_stage(out: Path, name: str, recipe: str, common: list[str], overrides: list[str]) -> Path:
    """Train one stage with the overrides every stage shares (printed once as $COMMON) and its own;
    skipped when its export exists. Returns the export directory."""
    from iquest_core.train.checkpoint import checkpoints
    from iquest_core.train.export import export

    run, exported = out / "runs" / name, out / "exports" / name
    if (exported / "config.json").is_file():
        print(f"{name}: done before ({exported})")
        return exported
    shown = " ".join(f"--set '{o}'" if any(c in o for c in " [{\"") else f"--set {o}" for o in overrides)
    print(f"$ iquest train --recipe {recipe} --output {run} $COMMON {shown}", flush=True)
    resume = bool(checkpoints(run / "checkpoints"))
    train(load_recipe(recipe, common + overrides), run, resume=resume)
    last = checkpoints(run / "checkpoints")[-1]
    print(f"$ iquest export {last} {exported}")
    export(last, exported)
    return exported


def sample(model_dir: Path, tokenizer_dir: Path) -> None:
    """Sampled completions (temperature 0.7, top-k 20, seeded) from the final model: a chat request and a
    code prefix."""
    from iquest_core.data.tokenizer import load_tokenizer
    from iquest_core.model import LoopCoderForCausalLM

    tok = load_tokenizer(tokenizer_dir)
    model = LoopCoderForCausalLM.from_pretrained(model_dir).eval()
    end = tok.special_id("<|im_end|>")
    prompts = {"chat": [tok.special_id("<|im_start|>"), *tok.encode("user\nWrite the Python function `read_jsonl`: "
                                                                     "Read a JSONL file into a list of records."),
                        end, *tok.encode("\n"), tok.special_id("<|im_start|>"), *tok.encode("assistant\n")],
               "code": tok.encode("def parse_args(argv):\n    parser = argparse.")}
    for kind, ids in prompts.items():
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), 80, do_sample=True, temperature=0.7, top_k=20, eos_token_id=end,
                                 generator=torch.Generator().manual_seed(0))[0, len(ids):]
        print(f"--- sample ({kind}) ---\n{tok.decode(ids)}\033[1m{tok.decode(out.tolist())}\033[0m")


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="iquest pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=Path("runs/codeflow"))
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every stage's steps and the corpus")
    args = parser.parse_args(argv)
    if not args.scale > 0:
        parser.error("--scale must be > 0")
    out, began = args.output, time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)

    def steps(n: int) -> str:
        return f"steps={max(4, round(n * args.scale))}"

    log("corpus: this repository and the Python standard library")
    repo, stdlib = collect_corpus(out, args.scale)
    log("data tools: syntax filter, dedup, decontamination")
    docs = run_data_tools(out, repo, stdlib)
    log("tokenizer")
    tokenizer = build_tokenizer(out, docs, vocab_size=1024)
    log("shards: general, code, FIM, commits")
    shards = build_shards(out, docs, tokenizer)
    agent, sft = build_chat_data(out, docs)
    common = [*MODEL, *SMALL_RUN, f"data.tokenizer={tokenizer}", "schedule.warmup_steps=3", "checkpoint_every=0"]
    print("COMMON = " + " ".join(f"--set {o}" for o in common))

    log("stage 1: pre-training (general + code, warm-up-stable-decay)")
    stage = run_stage(out, "pretrain", "pretrain", common, [
        steps(120), "seq_len=256", "batch_tokens=2048", "optim.lr=3e-3", "schedule.warmup_steps=6",
        sources((shards["general"], 0.4), (shards["code"], 0.6))])
    log("stage 2: annealing on the repository's code")
    stage = run_stage(out, "anneal", "anneal", common, [
        f"model.init_from={stage}", steps(30), "seq_len=256", "batch_tokens=2048", "optim.lr=1e-3",
        sources((shards["code"], 1.0))])
    log("stage 3: mid-training (longer rows; FIM, commits, agent trajectories)")
    stage = run_stage(out, "midtrain", "midtrain-32k", common, [
        f"model.init_from={stage}", steps(30), "seq_len=1024", "batch_tokens=4096", "optim.lr=1e-3",
        sources((shards["fim"], 0.3), (shards["commits"], 0.2), (agent, 0.3), (shards["code"], 0.2))])
    log("stage 4: SFT (assistant-only loss, low-LR tail, difficulty curriculum)")
    n = max(4, round(60 * args.scale))
    stage = run_stage(out, "sft", "sft-instruct", common, [
        f"model.init_from={stage}", f"steps={n}", "seq_len=512", "batch_tokens=2048", "optim.lr=1e-3",
        f"data.curriculum={{boundaries=[0.2, 0.5], stage_steps=[{n // 3}, {2 * n // 3}]}}",
        sources((sft, 1.0))])

    runs = [(name, read_metrics(out / "runs" / name)) for name in ("pretrain", "anneal", "midtrain", "sft")]
    plot_stages(runs, out / "loss.png")
    log(f"final model: {stage}")
    print(f"losses: mean of the first and of the last {SUMMARY_STEPS} steps (one step's loss is noisy)")
    for name, records in runs:
        first, last = (sum(r["loss"] for r in part) / len(part)
                       for part in (records[:SUMMARY_STEPS], records[-SUMMARY_STEPS:]))
        print(f"{name:>9}: {len(records)} steps, loss {first:.3f} -> {last:.3f}, "
              f"{records[-1]['tokens_per_s']:,.0f} tokens/s")
    sample(stage, tokenizer)
    print(f"\nloss plot: {out / 'loss.png'}; total {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
