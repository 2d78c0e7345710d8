"""Build a code corpus of a given size for the data-job scale measurements (not a test).

    python bench/data_corpus.py --gigabytes 1 --output /work/corpora/c1

Real files (source, docs and config text under 1 MB) of the installed site-packages and the standard
library, shuffled with a fixed seed, written as The Stack-like JSONL records {"path", "content", "repo"}
(repo = the top-level package) in part-NNNN.jsonl files of at most --part-mb MiB (256). When the real files run out
(about 0.6 GB here), the next round repeats them with every identifier outside KEYWORDS renamed
(`name` -> `name_r2`): different shingles (not duplicates), same syntax and size. Planted: 3% of records
are followed, a few hundred records later, by an exact copy and 3% by a near copy (2% of the words
replaced), under repo "fork". Prints the counts.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sysconfig
from pathlib import Path

SUFFIXES = {".py", ".pyi", ".pyx", ".pxd", ".c", ".h", ".cc", ".cpp", ".hpp", ".cu", ".cuh", ".js", ".ts", ".rs",
            ".go", ".java", ".md", ".rst", ".txt", ".toml", ".cfg", ".json", ".sh", ".yaml", ".yml"}
KEYWORDS = set("""False None True and as assert async await break class continue def del elif else except finally
for from global if import in is lambda nonlocal not or pass raise return try while with yield self cls print len
int float str bool list dict set tuple object super range type isinstance include define ifdef ifndef endif
pragma struct union enum typedef static const void char short long unsigned signed double auto extern switch
case default goto sizeof volatile inline template typename namespace using public private protected virtual
function var let new this null undefined export package func interface map chan fn mut impl pub use mod crate
match loop where trait true false""".split())
IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
PENDING = 300


def real_files() -> list[tuple[str, str, str]]:
    roots = [Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["stdlib"])]
    found = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix in SUFFIXES and path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 20:
                try:
                    text = path.read_text(encoding="utf-8")
                except (UnicodeDecodeError, OSError):
                    continue
                relative = path.relative_to(root)
                repo = relative.parts[0] if len(relative.parts) > 1 else root.name
                found.append((repo, relative.as_posix(), text))
    return found


def variant(text: str, round_: int) -> str:
    if round_ == 0:
        return text
    return IDENTIFIER.sub(lambda m: m.group(0) if m.group(0) in KEYWORDS else f"{m.group(0)}_r{round_}", text)


def near_copy(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    for _ in range(max(1, len(words) // 50)):
        words[rng.randrange(len(words))] = f"edited{rng.randrange(1000)}"
    return " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gigabytes", type=float, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--part-mb", type=int, default=256, help="largest part file (MiB)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    files = real_files()
    rng.shuffle(files)
    args.output.mkdir(parents=True, exist_ok=False)
    budget, written, part, handle = int(args.gigabytes * 1e9), 0, 0, None
    pending: list[tuple[int, dict]] = []
    counts = {"records": 0, "exact_copies": 0, "near_copies": 0}
    round_, index = 0, 0
    while written < budget or pending:
        if written >= budget:
            pending = [(counts["records"], r) for _, r in pending]
        elif index == len(files):
            round_, index = round_ + 1, 0
        out, draw = [], 1.0
        if written < budget:
            repo, path, text = files[index]
            index += 1
            record = {"path": path, "content": variant(text, round_), "repo": f"{repo}-r{round_}"}
            out, draw = [record], rng.random()
        if draw < 0.03:
            pending.append((counts["records"] + rng.randrange(PENDING), {**record, "repo": "fork"}))
            counts["exact_copies"] += 1
        elif draw < 0.06:
            pending.append((counts["records"] + rng.randrange(PENDING),
                            {**record, "content": near_copy(record["content"], rng), "repo": "fork"}))
            counts["near_copies"] += 1
        due = [r for at, r in pending if at <= counts["records"]]
        pending = [(at, r) for at, r in pending if at > counts["records"]]
        for r in out + due:
            line = (json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8")
            if handle is None or handle.tell() + len(line) > args.part_mb << 20:
                if handle:
                    handle.close()
                handle = open(args.output / f"part-{part:04d}.jsonl", "wb")
                part += 1
            handle.write(line)
            written += len(line)
            counts["records"] += 1
    handle.close()
    print(json.dumps({**counts, "bytes": written, "parts": part, "rounds": round_ + 1}))


if __name__ == "__main__":
    main()
