"""Time and peak memory of a whole data job (driver + workers) on a corpus (not a test).

    python bench/data_scale.py --corpus /work/corpora/c1 --work /work/corpora/runs/c1 --workers 2

Runs `iquest data run` on the pipeline --pipeline names ("full": syntax filter -> exact + near dedup ->
decontamination -> FIM -> tokenize, token shards out, with --tokenizer or one trained first on the
corpus's first 2,000 records, untimed; "dedup": exact + near dedup alone, .jsonl shards out) in a child
process and samples every process of its tree every 0.2 s: the peak of the summed resident set (RSS,
counting pages shared by forked workers once per process) and of the summed proportional set (PSS,
shared pages split between their processes: the tree's real footprint), and each process's CPU time
(/proc/PID/stat, so workers that are never waited for count too). Prints one JSON line: input bytes,
wall seconds, CPU seconds of the tree, MB/s, MB/s per worker, MB per CPU second, peak RSS and PSS in
MB, and the machine's load average at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HEADER = """inputs = {inputs}
output = "out"
output_format = "{format}"
"""
STEPS = {"full": ["syntax_filter", "dedup", "decontam", "fim", "tokenize"], "dedup": ["dedup"]}
OPTIONS = {"syntax_filter": "max_error_share = 0.02\n", "fim": "fim_rate = 0.5\nrepo_level_rate = 0.1\n",
           "tokenize": "tokenizer = {tokenizer}\n"}
TICKS = os.sysconf("SC_CLK_TCK")


def descendants(root: int, cpu: dict[int, float]) -> list[int]:
    """root and every process below it (from /proc/*/stat parent ids); records each one's CPU seconds."""
    children: dict[int, list[int]] = {}
    stats = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        stats[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
        if pid in stats:
            cpu[pid] = stats[pid]
    return found


def tree_memory(root: int, cpu: dict[int, float]) -> tuple[int, int]:
    """(summed RSS, summed PSS) in bytes of root and its descendants (/proc/PID/smaps_rollup)."""
    rss = pss = 0
    for pid in descendants(root, cpu):
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        values = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in lines[1:] if line.endswith("kB")}
        rss += values.get("Rss", 0)
        pss += values.get("Pss", 0)
    return rss, pss


def measure(command: list[str], cwd: Path, interval: float = 0.2) -> dict:
    load = os.getloadavg()[0]
    began = time.perf_counter()
    child = subprocess.Popen(command, cwd=cwd)
    peak_rss = peak_pss = 0
    cpu: dict[int, float] = {}
    while child.poll() is None:
        rss, pss = tree_memory(child.pid, cpu)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(interval)
    wall = time.perf_counter() - began
    if child.returncode:
        raise SystemExit(f"{' '.join(command)} failed with status {child.returncode}")
    return {"wall_s": round(wall, 1), "cpu_s": round(sum(cpu.values()), 1),
            "peak_rss_mb": round(peak_rss / 2**20), "peak_pss_mb": round(peak_pss / 2**20), "load_at_start": load,
            "load_at_end": os.getloadavg()[0]}


def train_tokenizer_on(part: str, target: Path, records: int = 2000) -> Path:
    """A 4,096-token byte-level BPE trained on the first `records` contents of `part`, saved in target."""
    from iquest_core.data.tokenizer import train_tokenizer

    with open(part, encoding="utf-8") as lines:
        texts = [json.loads(line)["content"] for _, line in zip(range(records), lines)]
    train_tokenizer(texts, vocab_size=4096).save(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="folder of part-*.jsonl (bench/data_corpus.py)")
    parser.add_argument("--work", type=Path, required=True, help="new folder for the pipeline file and the output")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engine", default="local")
    parser.add_argument("--pipeline", choices=sorted(STEPS), default="full")
    parser.add_argument("--tokenizer", type=Path, help="tokenizer directory of the full pipeline (default: trained)")
    args = parser.parse_args()
    inputs = sorted(str(p) for p in args.corpus.glob("part-*.jsonl"))
    args.work.mkdir(parents=True, exist_ok=False)
    tokenizer = args.tokenizer or (train_tokenizer_on(inputs[0], args.work / "tokenizer") if args.pipeline == "full"
                                   else None)
    steps = "".join(f'[[steps]]\nname = "{name}"\n{OPTIONS.get(name, "")}' for name in STEPS[args.pipeline])
    header = HEADER.format(inputs=json.dumps(inputs), format="tokens" if args.pipeline == "full" else "jsonl")
    (args.work / "pipeline.toml").write_text(header + steps.format(tokenizer=json.dumps(str(tokenizer))))
    command = [sys.executable, "-m", "iquest_core.cli", "data", "run", "pipeline.toml", "--workers",
               str(args.workers), "--engine", args.engine]
    result = measure(command, args.work)
    size = sum(Path(p).stat().st_size for p in inputs)
    mb = size / 1e6
    print(json.dumps({"corpus": str(args.corpus), "pipeline": args.pipeline, "input_mb": round(mb),
                      "workers": args.workers, **result,
                      "mb_per_s": round(mb / result["wall_s"], 2),
                      "mb_per_s_per_worker": round(mb / result["wall_s"] / args.workers, 2),
                      "mb_per_cpu_s": round(mb / result["cpu_s"], 2)}))


if __name__ == "__main__":
    main()
