"""A scaling sweep of real tiny training runs on the machine's own multilingual code.

    run_sweep(output, Grid())  ->  OUTPUT/runs.csv  (then `iquest scaling fit` on it)

1. Corpora: for each language, source files that this machine already has (the Python standard library,
   C headers under /usr/include, JavaScript that npm and Python packages ship, Perl's library, shell
   scripts), in an order fixed by a hash of each path, split into train and held-out files by that hash,
   capped at `corpus_bytes` per language; written to OUTPUT/data/LANG.{train,eval}.jsonl.
2. One byte-level BPE tokenizer (512 tokens) trained on an equal share of every language, so that all
   runs and all languages count loss over the same tokens: OUTPUT/tokenizer.
3. For every (model size, token count, language): `python -m iquest_core.train --recipe tiny --output
   OUTPUT/runs/NAME --set ...` (a LoopCoder of that width and depth, `tokens / batch_tokens` steps of a
   cosine schedule ending at that step, so each token count is a run of its own as in Chinchilla),
   `jobs` runs at a time with `threads` threads each; its log is OUTPUT/runs/NAME/train.log.
4. Each run's loss is the mean next-token cross-entropy (nats/token) of its final checkpoint on
   `eval_tokens` tokens of the language's held-out files (see HeldOutLoss), and N is the model's
   parameter count without the embedding (tied with the output head), as in Kaplan et al. 2020.

A finished run leaves OUTPUT/runs/NAME/result.json and is not repeated when the sweep runs again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from iquest_core.atomic_io import write_atomic
from iquest_core.jsonl import read_jsonl, write_jsonl
from iquest_core.data.tokenizer import load_tokenizer, train_tokenizer
from iquest_core.scaling.io import RUN_COLUMNS, write_runs
from iquest_core.train.checkpoint import checkpoints
from iquest_core.train.export import load_checkpoint_model
from iquest_core.data.tokenizer import EOS_TOKEN
from iquest_core.train.metrics import read_metrics
from iquest_core.model.loss import next_token_loss

VOCAB_SIZE = 512
SEQ_LEN = 256
HEAD_DIM = 16
MIN_FILE_BYTES, MAX_FILE_BYTES = 256, 256 * 1024
EVAL_SHARE = 10  # one file in EVAL_SHARE (by path hash) is held out
TOKENIZER_BYTES = 512 * 1024  # per language
CHUNK_BYTES = 2048

_SITE = sysconfig.get_paths()["purelib"]


@dataclass(frozen=True)
class Language:
    """Where a language's files are: suffixes, folders searched, path fragments and text fragments that
    disqualify a file (e.g. C++ inside .h headers)."""

    suffixes: tuple[str, ...]
    roots: tuple[str, ...]
    skip_paths: tuple[str, ...] = ()
    skip_texts: tuple[str, ...] = ()


LANGUAGES = {
    "python": Language((".py",), (sysconfig.get_paths()["stdlib"],), ("site-packages",)),
    "c": Language((".h",), ("/usr/include",), ("/c++/", "/llvm"), ("namespace ", "template <", "template<", "std::")),
    "javascript": Language((".js", ".mjs", ".cjs"), ("/usr/lib/node_modules", "/usr/share/javascript", _SITE),
                           (".min.", "/build/", "/dist/")),
    "perl": Language((".pm", ".pl"), ("/usr/share/perl", "/usr/share/perl5", "/usr/lib/x86_64-linux-gnu/perl-base")),
    "shell": Language((".sh", ".bash"), ("/usr/share", "/usr/lib", "/etc", _SITE)),
}


@dataclass(frozen=True)
class Grid:
    """The sweep: sizes are (hidden_size, layers) pairs; every model has heads of 16 dims, an MLP of
    3 x hidden_size and 2 loops; tokens are per run (rounded to whole steps of batch_tokens)."""

    languages: tuple[str, ...] = ("python", "c", "javascript")
    sizes: tuple[tuple[int, int], ...] = ((32, 1), (64, 2), (96, 2))
    tokens: tuple[int, ...] = (16_384, 40_960, 102_400, 204_800)
    batch_tokens: int = 1024
    lr: float = 3e-3
    corpus_bytes: int = 2_000_000
    eval_tokens: int = 16_384
    seed: int = 0
    jobs: int = 2
    threads: int = 1

    def __post_init__(self) -> None:
        for lang in self.languages:
            if lang not in LANGUAGES:
                raise ValueError(f"languages: unknown language {lang!r} (known: {', '.join(LANGUAGES)})")
        if not self.languages or not self.sizes or not self.tokens:
            raise ValueError("languages, sizes, tokens: expected at least one of each")
        for hidden, layers in self.sizes:
            if hidden < HEAD_DIM or hidden % HEAD_DIM or layers < 1:
                raise ValueError(f"sizes: expected hidden_size a positive multiple of {HEAD_DIM} and layers >= 1, "
                                 f"got {hidden}x{layers}")
        if self.batch_tokens < SEQ_LEN or self.batch_tokens % SEQ_LEN:
            raise ValueError(f"batch_tokens: expected a positive multiple of {SEQ_LEN}, got {self.batch_tokens}")
        for t in self.tokens:
            if t < self.batch_tokens:
                raise ValueError(f"tokens: expected >= batch_tokens={self.batch_tokens}, got {t}")
        if self.eval_tokens < SEQ_LEN or self.eval_tokens % SEQ_LEN:
            raise ValueError(f"eval_tokens: expected a positive multiple of {SEQ_LEN}, got {self.eval_tokens}")
        for name in ("corpus_bytes", "jobs", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected > 0, got {self.lr}")


def _path_hash(path: str) -> int:
    return zlib.crc32(path.encode())


def source_files(language: str, roots: tuple[str, ...] | None = None) -> list[Path]:
    """The language's files of MIN_FILE_BYTES..MAX_FILE_BYTES under its folders (or `roots`), in path-
    hash order (a fixed order that mixes folders)."""
    spec = LANGUAGES[language]
    found = set()
    for root in roots or spec.roots:
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in names:
                path = os.path.join(folder, name)
                if not name.endswith(spec.suffixes) or any(x in path for x in spec.skip_paths) or os.path.islink(path):
                    continue
                try:
                    size = os.path.getsize(path)
                except OSError:
                    continue
                if MIN_FILE_BYTES <= size <= MAX_FILE_BYTES:
                    found.add(path)
    return [Path(p) for p in sorted(found, key=lambda p: (_path_hash(p), p))]


def _readable_code(path: Path, language: Language) -> str | None:
    """The file as UTF-8 text, or None when it is not UTF-8, looks generated (minified, data tables) or
    holds one of the language's skip_texts."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.splitlines() or [""]
    if max(map(len, lines)) > 1000 or len(text) / len(lines) > 120 or any(t in text for t in language.skip_texts):
        return None
    return text


def _chunks(text: str) -> list[str]:
    """text cut at line ends into pieces of about CHUNK_BYTES (a line longer than that is a piece alone)."""
    pieces, current, size = [], [], 0
    for line in text.splitlines(keepends=True):
        if current and size + len(line) > CHUNK_BYTES:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        pieces.append("".join(current))
    return pieces


def build_corpus(language: str, corpus_bytes: int, roots: tuple[str, ...] | None = None
                 ) -> tuple[list[dict], list[dict]]:
    """(train, held-out) records {"text", "path"} of a language: files from `source_files`, one in
    EVAL_SHARE held out by path hash, train capped at corpus_bytes and held-out at corpus_bytes / EVAL_SHARE.
    Each file becomes records of about CHUNK_BYTES (cut at line ends), so that the trainer's shuffled
    document stream mixes many files in every stretch of steps instead of one long file after another.
    ValueError naming the language when either part comes out empty."""
    train, held_out, sizes = [], [], [0, 0]
    caps = (corpus_bytes, corpus_bytes // EVAL_SHARE)
    for path in source_files(language, roots):
        part = 1 if _path_hash(str(path)) % EVAL_SHARE == 0 else 0
        if sizes[part] >= caps[part]:
            if sizes[1 - part] >= caps[1 - part]:
                break
            continue
        text = _readable_code(path, LANGUAGES[language])
        if text is None:
            continue
        (held_out if part else train).extend({"text": chunk, "path": str(path)} for chunk in _chunks(text))
        sizes[part] += len(text.encode())
    if not train or not held_out:
        raise ValueError(f"languages: too little {language} code on this machine ({sizes[0]} train bytes, "
                         f"{sizes[1]} held-out bytes)")
    return train, held_out


def prepare_data(output: Path, grid: Grid) -> dict[str, tuple[Path, Path]]:
    """OUTPUT/data/LANG.train.jsonl and LANG.eval.jsonl for every language (kept when present) and the
    shared tokenizer OUTPUT/tokenizer; returns language -> (train path, held-out path)."""
    data = output / "data"
    data.mkdir(parents=True, exist_ok=True)
    paths = {}
    for lang in grid.languages:
        train_path, eval_path = data / f"{lang}.train.jsonl", data / f"{lang}.eval.jsonl"
        if not (train_path.is_file() and eval_path.is_file()):
            train, held_out = build_corpus(lang, grid.corpus_bytes)
            write_jsonl(eval_path, held_out)
            write_jsonl(train_path, train)
        paths[lang] = (train_path, eval_path)
    tokenizer_dir = output / "tokenizer"
    if not (tokenizer_dir / "tokenizer.json").is_file():
        sample = []
        for train_path, _ in paths.values():
            size = 0
            for _, record in read_jsonl(train_path, "sweep data"):
                if size >= TOKENIZER_BYTES:
                    break
                sample.append(record["text"])
                size += len(record["text"])
        staging = output / ".tokenizer.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        train_tokenizer(sample, vocab_size=VOCAB_SIZE).save(staging)
        os.replace(staging, tokenizer_dir)
    return paths


def run_name(language: str, size: tuple[int, int], tokens: int) -> str:
    return f"{language}-h{size[0]}l{size[1]}-t{tokens}"


def train_command(run_dir: Path, train_jsonl: Path, tokenizer_dir: Path, size: tuple[int, int], tokens: int,
                  grid: Grid) -> list[str]:
    """The `python -m iquest_core.train --recipe tiny` command line of one run."""
    hidden, layers = size
    heads = hidden // HEAD_DIM
    steps = max(1, round(tokens / grid.batch_tokens))
    overrides = {
        "steps": steps, "seed": grid.seed, "seq_len": SEQ_LEN, "batch_tokens": grid.batch_tokens,
        "checkpoint_every": 0, "keep_checkpoints": 1,
        "model.vocab_size": VOCAB_SIZE, "model.hidden_size": hidden, "model.intermediate_size": 3 * hidden,
        "model.num_hidden_layers": layers, "model.num_attention_heads": heads,
        "model.num_key_value_heads": heads // 2 if heads % 2 == 0 else heads, "model.head_dim": HEAD_DIM,
        "optim.lr": grid.lr, "schedule.kind": '"cosine"', "schedule.warmup_steps": steps // 10,
        "data.sources": f'[{{path = {json.dumps(str(train_jsonl))}, kind = "jsonl", weight = 1.0}}]',
        "data.tokenizer": json.dumps(str(tokenizer_dir)),
    }
    command = [sys.executable, "-m", "iquest_core.train", "--recipe", "tiny", "--output", str(run_dir)]
    for key, value in overrides.items():
        command += ["--set", f"{key}={value}"]
    return command


class HeldOutLoss:
    """Mean next-token loss of a checkpoint on a language's held-out files: every file (tokenized, with its
    end-of-text token) is cut into windows of SEQ_LEN + 1 tokens, and eval_tokens / SEQ_LEN windows are
    taken round-robin over the files (each file's first window, then each file's second, ...), so that
    the estimate covers all held-out files rather than the first few."""

    def __init__(self, eval_jsonl: Path, tokenizer_dir: Path, eval_tokens: int) -> None:
        tokenizer = load_tokenizer(tokenizer_dir)
        eos = tokenizer.special_id(EOS_TOKEN)
        docs = [tokenizer.encode(r["text"]) + [eos] for _, r in read_jsonl(eval_jsonl, "sweep data")]
        per_doc = [[d[i:i + SEQ_LEN + 1] for i in range(0, len(d) - SEQ_LEN, SEQ_LEN)] for d in docs]
        windows = []
        for k in range(max(map(len, per_doc), default=0)):
            windows += [ws[k] for ws in per_doc if k < len(ws)]
        rows = eval_tokens // SEQ_LEN
        if len(windows) < rows:
            raise ValueError(f"eval_tokens: {eval_jsonl} holds only {len(windows) * SEQ_LEN} tokens in whole "
                             f"windows, fewer than {eval_tokens}")
        self.windows = torch.tensor(windows[:rows], dtype=torch.int64)

    def __call__(self, checkpoint: Path) -> tuple[float, int, int]:
        """(loss, non-embedding parameters, all parameters) of the checkpoint's model."""
        model = load_checkpoint_model(checkpoint).eval()
        total = sum(p.numel() for p in model.parameters())  # a tied lm_head is counted once
        embedding = sum(p.numel() for p in {model.model.embed_tokens.weight, model.lm_head.weight})
        with torch.no_grad():
            loss = next_token_loss(model, self.windows[:, :-1], self.windows[:, 1:])
        return float(loss), total - embedding, total


def _train_and_measure(name: str, command: list[str], run_dir: Path, held_out: HeldOutLoss, language: str,
                       size: tuple[int, int], threads: int) -> dict:
    result_path = run_dir / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    shutil.rmtree(run_dir, ignore_errors=True)  # an unfinished run of an earlier sweep starts over
    run_dir.mkdir(parents=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    began = time.perf_counter()
    with open(run_dir / "train.log", "w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    wall = time.perf_counter() - began
    found = checkpoints(run_dir / "checkpoints")
    if code != 0 or not found:
        tail = (run_dir / "train.log").read_text()[-2000:]
        raise RuntimeError(f"run {name} failed (exit {code}); {run_dir / 'train.log'} ends:\n{tail}")
    last = read_metrics(run_dir)[-1]
    loss, params, params_total = held_out(found[-1])
    result = {"language": language, "params": params, "tokens": last["tokens"], "loss": loss,
              "train_loss": last["loss"], "params_total": params_total, "hidden_size": size[0],
              "layers": size[1], "steps": last["step"], "wall_s": round(wall, 2), "run": name}
    write_atomic(result_path, json.dumps(result, indent=1) + "\n")
    return result


def run_sweep(output: str | Path, grid: Grid) -> Path:
    """Run the grid (module docstring) and write OUTPUT/runs.csv (columns RUN_COLUMNS then train_loss,
    params_total, hidden_size, layers, steps, wall_s, run); returns its path."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    paths = prepare_data(output, grid)
    tokenizer_dir = output / "tokenizer"
    torch.set_num_threads(grid.threads)
    held_out = {lang: HeldOutLoss(paths[lang][1], tokenizer_dir, grid.eval_tokens) for lang in grid.languages}
    # Largest runs first, so that the two job slots finish together.
    plan = sorted(((lang, size, tokens) for lang in grid.languages for size in grid.sizes for tokens in grid.tokens),
                  key=lambda r: -r[1][0] ** 2 * r[1][1] * r[2])
    rows = []
    with ThreadPoolExecutor(grid.jobs) as pool, tqdm(total=len(plan), desc="sweep", unit="run") as bar:
        futures = []
        for lang, size, tokens in plan:
            name = run_name(lang, size, tokens)
            run_dir = output / "runs" / name
            command = train_command(run_dir, paths[lang][0], tokenizer_dir, size, tokens, grid)
            futures.append(pool.submit(_train_and_measure, name, command, run_dir, held_out[lang], lang, size,
                                       grid.threads))
        try:
            for future in futures:
                rows.append(future.result())
                bar.update()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    rows.sort(key=lambda r: (grid.languages.index(r["language"]), r["params"], r["tokens"]))
    runs_csv = output / "runs.csv"
    write_runs(runs_csv, rows, columns=[*RUN_COLUMNS, "train_loss", "params_total", "hidden_size", "layers",
                                        "steps", "wall_s", "run"])
    return runs_csv
