import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iquest_core.data.sources import Document, Skipped, read_documents
from tests.data.conftest import FILES


def test_directory(tmp_path):
    repo = tmp_path / "myrepo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / "src").mkdir()
    (repo / "src" / "b.py").write_bytes("\ufeffx = '你好 😀'\n".encode())
    (repo / "a.rs").write_text("fn main() {}\n")
    (repo / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (repo / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (repo / "link.py").symlink_to(repo / "a.rs")
    skipped = Skipped()
    docs = list(read_documents([repo], skipped=skipped))
    assert docs == [Document("a.rs", "fn main() {}\n", "myrepo"),
                    Document("src/b.py", "\ufeffx = '你好 😀'\n", "myrepo")]
    assert dict(skipped.counts) == {"binary": 1, "not_utf8": 1} and skipped.total == 2


def test_unreadable_file_is_counted(tmp_path, monkeypatch):
    (tmp_path / "secret.py").write_text("x = 1\n")
    (tmp_path / "open.py").write_text("y = 2\n")
    read_bytes = Path.read_bytes

    def failing(self):
        if self.name == "secret.py":  # root reads files whatever their mode, so fail it here
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", failing)
    skipped = Skipped()
    assert [d.path for d in read_documents([tmp_path], skipped=skipped)] == ["open.py"]
    assert dict(skipped.counts) == {"unreadable": 1}


def test_jsonl_gzip_and_parquet(tmp_path):
    records = [{"path": "a.py", "content": "print('<|im_end|>')\n", "repo": "org/a"},
               {"path": "b.go", "content": "package b\n", "repo": None},
               {"path": "c.js", "content": "let x\u0000", "repo": "org/c"},
               {"path": "d.py", "content": 5, "repo": "org/d"},
               {"path": "e.py", "text": "<|fim_prefix|>x", "special": [[0, 14]]}]
    lines = [json.dumps(r) for r in records] + ["{not json", "[1, 2]"]
    (tmp_path / "x.jsonl").write_text("\n".join(lines) + "\n")
    with gzip.open(tmp_path / "x.jsonl.gz", "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    table = pa.table({"path": ["a.py", "b.go"], "content": ["x = 1\n", "package b\n"], "repo": ["org/a", None]})
    pq.write_table(table, tmp_path / "x.parquet")
    expected = [Document("a.py", "print('<|im_end|>')\n", "org/a"), Document("b.go", "package b\n", None),
                Document("e.py", "<|fim_prefix|>x", None, ((0, 14),))]
    for name in ("x.jsonl", "x.jsonl.gz"):
        skipped = Skipped()
        assert list(read_documents([tmp_path / name], skipped=skipped)) == expected
        assert dict(skipped.counts) == {"binary": 1, "bad_record": 3}
    assert list(read_documents([tmp_path / "x.parquet"])) == [Document("a.py", "x = 1\n", "org/a"),
                                                              Document("b.go", "package b\n", None)]


def test_real_corpus_directory():
    docs = list(read_documents([FILES]))
    assert {d.path.split("/")[0] for d in docs} >= {"python", "java", "typescript", "javascript", "c_sharp", "go",
                                                     "rust", "cpp", "LICENSES"}
    assert all(d.repo == "files" for d in docs)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        list(read_documents([tmp_path / "missing.jsonl"]))
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="x.csv"):
        list(read_documents([tmp_path / "x.csv"]))
    with pytest.raises(ValueError, match="sequence"):
        list(read_documents(str(tmp_path)))
    with pytest.raises(ValueError, match="reason"):
        Skipped().add("tired")
