"""The shard engine: results in shard order, errors propagate, atomic JSONL output; and every data command
(evolution, dedup, decontam, fim, filter, tokenize) writes identical output on the local pool and on Ray
(one local Ray instance, num_cpus=2, started once for this module)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from iquest_core.cli import main as iquest
from iquest_core.data import engine
from tests.data.conftest import FILES, STDLIB

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("workers", [1, 2])
def test_local_results_in_shard_order(workers):
    shards = [list(range(n, 0, -1)) for n in (5, 0, 3, 8, 1)]
    assert engine.map_shards(sorted, shards, workers=workers) == [sorted(s) for s in shards]
    assert engine.map_shards(sorted, [], workers=workers) == []


def frozen_objects(_shard) -> int:
    import gc

    return gc.get_freeze_count()


def test_local_workers_inherit_the_driver_frozen_and_the_driver_is_unfrozen_after():
    """A worker's full collection must not touch the driver's inherited objects (copy-on-write)."""
    import gc

    assert min(engine.map_shards(frozen_objects, [0, 1, 2], workers=2)) > 10_000
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_local_errors_propagate(workers):
    with pytest.raises(ValueError, match="invalid literal"):
        engine.map_shards(int, ["1", "x", "3"], workers=workers)


@pytest.mark.parametrize("kwargs,name", [({"engine": "spark"}, "engine"), ({"workers": 0}, "workers"),
                                         ({"workers": 1.5}, "workers")])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        engine.map_shards(len, [[1]], **kwargs)


def test_chunks():
    assert engine.chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    with pytest.raises(ValueError, match="^size:"):
        engine.chunks([1], 0)


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=128 * 2**20,
             configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_results_in_shard_order_and_errors(ray_session):
    shards = [list(range(n, 0, -1)) for n in (5, 0, 3, 8, 1, 2, 7)]
    assert engine.map_shards(sorted, shards, engine="ray") == [sorted(s) for s in shards]
    with pytest.raises(ValueError, match="invalid literal"):
        engine.map_shards(int, ["1", "x"], engine="ray")


def outputs(path):
    """Relative name -> bytes of every file in an output directory, or {"": bytes} of an output file."""
    path = Path(path)
    if path.is_dir():
        return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return {"": path.read_bytes()}


def test_every_data_command_gives_identical_output_on_ray(ray_session, tmp_path, tokenizer):
    corpus = tmp_path / "corpus"
    shutil.copytree(FILES, corpus / "files")
    shutil.copy(STDLIB / "textwrap.py", corpus / "textwrap.py")
    shutil.copy(STDLIB / "textwrap.py", corpus / "textwrap_copy.py")
    (corpus / "textwrap_edit.py").write_text((STDLIB / "textwrap.py").read_text().replace("width", "columns", 3))
    tokenizer.save(tmp_path / "tok")
    repo = tmp_path / "iquest.git"  # a clone: the history stays put between the two runs
    subprocess.run(["git", "clone", "-q", "--bare", str(REPO), str(repo)], check=True)
    commands = {
        "evolution": [str(repo), "--max-triples", "4", "--output"],
        "dedup": [str(corpus), "--shard-bytes", "20000", "--removed", "{out}.removed", "--output"],
        "decontam": [str(corpus), "--shard-bytes", "20000", "--flagged", "{out}.flagged", "--output"],
        "fim": [str(corpus), "--fim-rate", "1", "--repo-level-rate", "0.5", "--seed", "5", "--output"],
        "filter": [str(corpus), "--output"],
        "tokenize": [str(corpus), "--tokenizer", str(tmp_path / "tok"), "--shard-bytes", "20000", "--output"],
    }
    for command, args in commands.items():
        results = {}
        for run_engine in ("local", "ray"):
            out = tmp_path / f"{command}-{run_engine}"
            argv = [a.format(out=out) for a in args] + [str(out), "--engine", run_engine]
            if run_engine == "local":
                argv += ["--workers", "2"]
            assert iquest(["data", command, *argv]) == 0, command
            results[run_engine] = {s: outputs(f"{out}{s}") for s in ("", ".removed", ".flagged")
                                   if Path(f"{out}{s}").exists()}
        assert results["local"] == results["ray"], command
        assert all(results["local"][""].values()), f"{command} wrote nothing"
    removed = [json.loads(line) for line in (tmp_path / "dedup-ray.removed").read_text().splitlines()]
    assert {("textwrap_copy.py", "exact"), ("textwrap_edit.py", "near")} <= {(r["path"], r["kind"]) for r in removed}
