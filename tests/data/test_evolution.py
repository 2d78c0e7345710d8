"""Repository-evolution triples on this repository's own history and on synthetic repositories: the
start window and first-parent order, `git apply` of P reproducing R_end, determinism, merges, renames,
deletions, binary/non-UTF-8/lockfile/vendored/symlink paths, bad repositories, the training text."""

import io
import json
import os
import subprocess
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from iquest_core.data import evolution
from iquest_core.data.jobs import evolution as evolution_job

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(cwd, *args, **kwargs):
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, env=ENV, **kwargs).stdout


def first_parent(repo):
    return git(repo, "rev-list", "--first-parent", "--reverse", "HEAD").decode().split()


def assert_patch_reproduces_end(t, tmp_path):
    """Write R_start's touched files, `git apply` P, compare every touched path with R_end."""
    work = tmp_path / f"apply-{t.start_index}"
    work.mkdir()
    for path, text in t.start_files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(text.encode("utf-8"))
    subprocess.run(["git", "apply", "--whitespace=nowarn", "-"], cwd=work, input=t.patch.encode("utf-8"),
                   check=True, capture_output=True, env=ENV)
    for path in set(t.start_files) | set(t.end_files):
        if path in t.end_files:
            assert (work / path).read_bytes() == t.end_files[path].encode("utf-8"), path
        else:
            assert not (work / path).exists(), path


@pytest.fixture(scope="module")
def own_repo(tmp_path_factory):
    """A bare clone of this repository's HEAD: its history stays put while the tests read it."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path_factory.mktemp("own") / "iquest.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(REPO), str(clone)], check=True, env=ENV)
    return clone


@pytest.fixture(scope="module")
def own_history(own_repo):
    history = first_parent(own_repo)
    if len(history) < 20:
        pytest.skip(f"shallow history ({len(history)} commits)")
    counts = Counter()
    return history, list(evolution.triples(own_repo, seed=0, counts=counts)), counts


def test_own_history_triples(own_history, tmp_path):
    history, triples, counts = own_history
    assert triples and counts["triples"] == len(triples)
    n = len(history)
    starts = [t.start_index for t in triples]
    assert len(set(starts)) == len(starts)
    for t in triples:
        assert 0.4 <= t.start_index / (n - 1) <= 0.8
        assert history[t.start_index] == t.start_commit and history[t.end_index] == t.end_commit
        assert 1 <= t.end_index - t.start_index <= evolution.SearchCriteria().max_commits
        assert len(t.messages) == t.end_index - t.start_index and t.history_length == n
        assert t.patch.startswith("diff --git a/")
        touched = set(t.start_files) | set(t.end_files)
        assert touched and len(touched) <= evolution.SearchCriteria().max_files
        assert any(evolution.path_kind(p) == "code" for p in touched)
        assert_patch_reproduces_end(t, tmp_path)


def test_patch_applies_on_the_whole_start_tree(own_repo, own_history, tmp_path):
    _, triples, _ = own_history
    t = max(triples, key=lambda t: len(t.patch))
    trees = {}
    for name, commit in (("start", t.start_commit), ("end", t.end_commit)):
        trees[name] = tmp_path / name
        trees[name].mkdir()
        tarfile.open(fileobj=io.BytesIO(git(own_repo, "archive", commit))).extractall(trees[name], filter="data")
    subprocess.run(["git", "apply", "--check", "-"], cwd=trees["start"], input=t.patch.encode(), check=True, env=ENV)
    subprocess.run(["git", "apply", "-"], cwd=trees["start"], input=t.patch.encode(), check=True, env=ENV)
    for path in set(t.start_files) | set(t.end_files):
        end = trees["end"] / path
        assert (trees["start"] / path).exists() == end.exists()
        if end.exists():
            assert (trees["start"] / path).read_bytes() == end.read_bytes()


def test_deterministic_for_a_seed(own_repo, own_history):
    _, triples, _ = own_history
    again = list(evolution.triples(own_repo, seed=0))
    assert [t.to_json() for t in again] == [t.to_json() for t in triples]
    other = [t.start_index for t in evolution.triples(own_repo, seed=1)]
    assert sorted(other) == sorted(t.start_index for t in triples) and other != [t.start_index for t in triples]
    assert len(list(evolution.triples(own_repo, seed=0, max_triples=3))) == 3


class Synthetic:
    """A repository built commit by commit in a temporary directory."""

    def __init__(self, root):
        self.root = root
        root.mkdir()
        git(root, "init", "-q", "-b", "main")

    def commit(self, message, files=(), delete=(), rename=()):
        for path, data in dict(files).items():
            target = self.root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data if isinstance(data, bytes) else data.encode())
        for path in delete:
            git(self.root, "rm", "-q", path)
        for old, new in rename:
            git(self.root, "mv", old, new)
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "--allow-empty", "-m", message)


def code(n, tag):
    return "".join(f"def f{i}_{tag}(x):\n    return x + {i}\n\n" for i in range(n))


@pytest.fixture
def rich_repo(tmp_path):
    r = Synthetic(tmp_path / "rich")
    r.commit("root", {"a.py": code(5, "a"), "b.py": code(3, "b"), "old.py": code(4, "old"), "readme.md": "hi\n"})
    for i in range(4):
        r.commit(f"grow {i}", {"a.py": code(6 + i, "a")})
    # a side branch merged with a merge commit (first parent: main)
    git(r.root, "checkout", "-q", "-b", "side")
    r.commit("side work", {"side.py": code(8, "side")})
    git(r.root, "checkout", "-q", "main")
    r.commit("main work", {"b.py": code(5, "b")})
    git(r.root, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    r.commit("crlf and no final newline", {"crlf.py": code(3, "crlf").replace("\n", "\r\n"), "données/ünï.py": "x = 1"})
    r.commit("mixed change", {"a.py": code(12, "a"), "img.bin": b"\x00\x01\x02" * 50, "latin.py": "x = 'caf\xe9'\n".encode("latin-1"),
                              "Cargo.lock": "lock 1\n", "vendor/lib.py": code(3, "v"), "new.py": code(4, "new"),
                              "crlf.py": code(5, "crlf").replace("\n", "\r\n"), "données/ünï.py": code(3, "u").rstrip("\n")},
             delete=["readme.md"], rename=[("old.py", "renamed.py")])
    os.symlink("a.py", r.root / "link.py")
    r.commit("symlink and more code", {"b.py": code(9, "b")})
    for i in range(4):
        r.commit(f"tail {i}", {"c.py": code(3 + i, "c")})
    return r.root


def test_synthetic_repository_paths_and_merges(rich_repo, tmp_path):
    counts = Counter()
    triples = list(evolution.triples(rich_repo, start_range=(0.0, 1.0), max_commits=3, counts=counts))
    history = first_parent(rich_repo)
    assert len(history) == 14
    assert counts["triples"] == len(triples) >= 5
    assert counts["merge_commits"] >= 1
    mixed = [t for t in triples if "mixed change" in t.messages]
    assert mixed
    for t in mixed:
        assert t.excluded.get("img.bin") == "binary" and t.excluded.get("latin.py") == "not_utf8"
        assert t.excluded.get("Cargo.lock") == "lockfile" and t.excluded.get("vendor/lib.py") == "vendored"
        assert "old.py" in t.start_files and "old.py" not in t.end_files  # rename = deletion + addition
        assert "renamed.py" in t.end_files and "renamed.py" not in t.start_files
        assert "readme.md" in t.start_files and "readme.md" not in t.end_files
        assert t.end_files["crlf.py"].count("\r\n") == 15 and not t.end_files["données/ünï.py"].endswith("\n")
    assert any(t.excluded.get("link.py") == "symlink" for t in triples)
    for reason in ("binary", "not_utf8", "lockfile", "vendored", "symlink"):
        assert counts[f"excluded_{reason}"] >= 1
    for t in triples:
        assert_patch_reproduces_end(t, tmp_path)


def test_formatting_only_change_is_not_meaningful(tmp_path):
    r = Synthetic(tmp_path / "fmt")
    r.commit("root", {"a.py": code(10, "a")})
    r.commit("indent", {"a.py": code(10, "a").replace("    return", "\treturn")})
    r.commit("docs", {"notes.txt": "x\n" * 50})
    counts = Counter()
    assert list(evolution.triples(r.root, start_range=(0.0, 1.0), counts=counts)) == []
    assert counts["no_meaningful_change"] == 2


def test_empty_and_short_repositories(tmp_path):
    empty = Synthetic(tmp_path / "empty")
    counts = Counter()
    assert list(evolution.triples(empty.root, counts=counts)) == [] and counts == {"empty_repository": 1}
    one = Synthetic(tmp_path / "one")
    one.commit("root", {"a.py": code(3, "a")})
    counts = Counter()
    assert list(evolution.triples(one.root, counts=counts)) == [] and counts == {"history_too_short": 1}
    two = Synthetic(tmp_path / "two")
    two.commit("root", {"a.py": code(3, "a")})
    two.commit("more", {"a.py": code(30, "a")})
    counts = Counter()
    assert list(evolution.triples(two.root, counts=counts)) == [] and counts == {"history_too_short": 1}


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="^repo_path: .* is not a git repository"):
        evolution.triples(tmp_path)
    with pytest.raises(ValueError, match="^repo_path: .* is not a directory"):
        evolution.triples(tmp_path / "missing")
    with pytest.raises(ValueError, match="^start_range:"):
        evolution.triples(REPO, start_range=(0.8, 0.4))
    with pytest.raises(ValueError, match="^max_triples:"):
        evolution.triples(REPO, max_triples=-1)
    with pytest.raises(ValueError, match="^max_comits: not a search criterion"):
        evolution.triples(REPO, max_comits=3)
    with pytest.raises(ValueError, match="^min_code_lines: expected an int >= 1"):
        evolution.triples(REPO, min_code_lines=0)


def test_format_triple_layout_and_budget(rich_repo, tokenizer):
    t = next(t for t in evolution.triples(rich_repo, start_range=(0.0, 1.0), max_commits=3)
             if "mixed change" in t.messages)
    text = evolution.format_triple(t, tokenizer, budget_tokens=100_000)
    assert text.startswith(f"<|repo_name|>{t.repo}\n<|file_sep|>")
    assert text.endswith(f"<|im_start|>patch\n{t.patch}<|im_end|>")
    assert "<|im_start|>commits\n" + "\n\n".join(t.messages) + "\n<|im_end|>\n" in text
    assert text.count("<|file_sep|>") == len(t.start_files)
    parts = evolution.format_triple_parts(t, tokenizer, budget_tokens=100_000)
    full = len(tokenizer.encode_parts(parts))
    tight = evolution.format_triple_parts(t, tokenizer, budget_tokens=full - 1)
    assert len(tokenizer.encode_parts(tight)) <= full - 1
    kept = sum(1 for special, piece in tight if special and piece == "<|file_sep|>")
    assert kept == len(t.start_files) - 1
    with pytest.raises(ValueError, match="^budget_tokens: the triple needs"):
        evolution.format_triple(t, tokenizer, budget_tokens=10)


def test_cli(rich_repo, tmp_path, capsys):
    out = tmp_path / "triples.jsonl"
    assert evolution_job.main([str(rich_repo), str(tmp_path), str(tmp_path / "missing"), "--output", str(out),
                               "--start-range", "0", "1", "--max-commits", "3", "--workers", "1"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and all(r["repo"] == "rich" for r in records)
    assert records == [t.to_json() for t in evolution.triples(rich_repo, start_range=(0, 1), max_commits=3)]
    err = capsys.readouterr().err
    assert "not_a_git_repository" in err and "triples_written" in err
    assert evolution_job.main([str(rich_repo), "--output", str(out), "--max-triples", "-2"]) == 2
    assert "max_triples: expected" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        evolution_job.main(["--help"])
    assert exit_.value.code == 0


def test_cli_training_text(rich_repo, tmp_path, tokenizer):
    tokenizer.save(tmp_path / "tok")
    out = tmp_path / "triples.jsonl"
    assert evolution_job.main([str(rich_repo), "--output", str(out), "--start-range", "0", "1", "--max-commits", "3",
                               "--tokenizer", str(tmp_path / "tok"), "--budget-tokens", "100000", "--workers", "1"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    expected = [evolution.format_triple(t, tokenizer, budget_tokens=100_000)
                for t in evolution.triples(rich_repo, start_range=(0, 1), max_commits=3)]
    assert [r["text"] for r in records] == expected
