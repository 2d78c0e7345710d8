"""Real text documents found on this machine, for the quality measurements (nothing downloaded).

    documents(limit) -> [{"id", "source", "text"}]   stdlib docstrings, README files of installed packages
                                                      (dist-info/METADATA), installed packages' docstrings

Deterministic: files are walked in sorted order; a document is one docstring (>= 200 characters) or one
README cut into chunks of whole paragraphs of at most CHUNK characters (the encoder reads ~256 tokens).
"""

from __future__ import annotations

import ast
import json
import sysconfig
import warnings
from pathlib import Path

import numpy as np

from iquest_core.atomic_io import atomic_path

CHUNK = 1200
MIN_CHARS = 200
_SKIPPED = {"test", "tests", "idlelib", "site-packages"}


def _docstrings(root: Path):
    for path in sorted(root.rglob("*.py")):
        if any(part in _SKIPPED for part in path.relative_to(root).parts):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                text = ast.get_docstring(node)
                if text and len(text) >= MIN_CHARS:
                    name = getattr(node, "name", "<module>")
                    yield f"{root.name}:{path.relative_to(root)}:{name}:{getattr(node, 'lineno', 0)}", text


def _readmes(site: Path):
    for meta in sorted(site.glob("*.dist-info/METADATA")):
        text = meta.read_text(encoding="utf-8", errors="replace")
        _, _, body = text.partition("\n\n")
        chunk: list[str] = []
        size, part = 0, 0
        for paragraph in body.split("\n\n"):
            if size + len(paragraph) > CHUNK and chunk:
                yield f"readme:{meta.parent.name}:{part}", "\n\n".join(chunk)
                chunk, size, part = [], 0, part + 1
            chunk.append(paragraph)
            size += len(paragraph) + 2
        if chunk:
            yield f"readme:{meta.parent.name}:{part}", "\n\n".join(chunk)


def documents(limit: int | None = None, *, site: str | None = None) -> list[dict]:
    """Up to `limit` distinct documents of >= MIN_CHARS characters: stdlib docstrings, READMEs, then the
    docstrings of installed packages."""
    out = []
    for doc in _iter_documents(Path(site or sysconfig.get_paths()["purelib"])):
        out.append(doc)
        if limit is not None and len(out) >= limit:
            break
    return out


def _iter_documents(site: Path):
    seen = set()
    for source, pairs in (("stdlib", _docstrings(Path(sysconfig.get_paths()["stdlib"]))),
                          ("readme", _readmes(site)), ("package", _docstrings(site))):
        for doc_id, text in pairs:
            if len(text) >= MIN_CHARS and text not in seen:
                seen.add(text)
                yield {"id": doc_id, "source": source, "text": text}


def frozen_corpus(n: int) -> list[dict]:
    """documents(n) frozen on first use in the cache folder (the shared environment's packages change
    while people work, and cached embeddings must keep matching their documents). A cache holding only
    ids (an earlier run's embeddings) is rebuilt from the documents still on disk; rows whose document
    is gone are dropped from the embeddings too."""
    folder = _cache()
    snapshot, ids_path = folder / f"corpus-{n}.jsonl", folder / f"corpus-{n}.ids.json"
    if snapshot.is_file():
        return [json.loads(line) for line in snapshot.read_text(encoding="utf-8").splitlines()]
    if ids_path.is_file():
        wanted = json.loads(ids_path.read_text())
        found: dict[str, dict] = {}
        for doc in _iter_documents(Path(sysconfig.get_paths()["purelib"])):
            if doc["id"] in set(wanted) - found.keys():
                found[doc["id"]] = doc
                if len(found) == len(wanted):
                    break
        keep = [i for i, doc_id in enumerate(wanted) if doc_id in found]
        docs = [found[wanted[i]] for i in keep]
        vectors = np.load(folder / f"corpus-{n}.npy")[keep]
        np.save(folder / f"corpus-{n}.npy", vectors)
        ids_path.write_text(json.dumps([d["id"] for d in docs]))
    else:
        docs = documents(n)
    snapshot.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return docs


def _cache() -> Path:
    from iquest_core.data.quality import encoder

    folder = encoder.cache_dir() / "quality-bench"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cached_embeddings(docs: list[dict], name: str) -> np.ndarray:
    """The encoder's embeddings of docs' texts, computed once and kept in the cache folder (outside the
    repository) under `name` with the documents' ids; recomputed when the ids differ."""
    from iquest_core.data.quality import encoder

    folder = _cache()
    vectors_path, ids_path = folder / f"{name}.npy", folder / f"{name}.ids.json"
    ids = [d["id"] for d in docs]
    if vectors_path.is_file() and ids_path.is_file() and json.loads(ids_path.read_text()) == ids:
        return np.load(vectors_path)
    vectors = encoder.embed(encoder.load_encoder(), [d["text"] for d in docs])
    np.save(vectors_path, vectors)
    ids_path.write_text(json.dumps(ids))
    return vectors


def cached_windows(docs: list[dict], name: str, *, max_windows: int = 8,
                   whole: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """{document id: its windows' embeddings (windows, dim)} (iquest_core.data.quality.windows), computed
    once and kept in the cache folder under `name`; recomputed when the ids or max_windows differ.
    `whole`: {id: embedding of the whole text} already computed (cached_embeddings), reused for the
    documents that are a single window (the same text through the same encoder)."""
    from iquest_core.data.quality import encoder, windows

    path = _cache() / f"{name}.windows-{max_windows}.npz"
    ids = [d["id"] for d in docs]
    if path.is_file():
        with np.load(path) as data:
            if json.loads(str(data["ids"])) == ids:
                return dict(zip(ids, np.split(data["vectors"], np.cumsum(data["counts"])[:-1])))
    model = encoder.load_encoder()
    size = model.max_seq_length - windows.SPECIAL_TOKENS
    reused = {d["id"]: whole[d["id"]][None] for d in docs if whole and d["id"] in whole
              and len(windows.window_spans(model.tokenizer, d["text"], size, max_windows)) == 1}
    rest = [d for d in docs if d["id"] not in reused]
    vectors, counts = windows.embed_windows(model, [d["text"] for d in rest], max_windows=max_windows)
    out = {**reused, **dict(zip([d["id"] for d in rest], np.split(vectors, np.cumsum(counts)[:-1])))}
    rows = [out[i] for i in ids]
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, vectors=np.vstack(rows), counts=[len(r) for r in rows], ids=json.dumps(ids))
    return {i: out[i] for i in ids}


if __name__ == "__main__":
    import collections
    import sys

    docs = documents(int(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(len(docs), collections.Counter(d["source"] for d in docs))
    if "--embed" in sys.argv:
        print(cached_embeddings(docs, f"corpus-{len(docs)}").shape)
    if "--windows" in sys.argv:
        print(sum(len(v) for v in cached_windows(docs, f"corpus-{len(docs)}").values()), "windows")
