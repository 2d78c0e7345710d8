"""The drill end to end (`iquest drill`): 17 faults at every registered site, the detection and false-positive
goals hold, the report follows its schema, and with check_every=N detection comes within N steps."""

import json

import numpy as np
import pytest

import torch

from iquest_core.cli import main as iquest
from iquest_core.reliability.drill import SITES, checkpoint_site, run_drill, runner, step_site

COUNTS = ("injected", "effective", "masked", "detected_before_update", "detected_later", "missed")


def check_counts(c):
    assert set(COUNTS) <= set(c)
    assert c["injected"] == c["effective"] + c["masked"]
    assert c["effective"] == c["detected_before_update"] + c["detected_later"] + c["missed"]


def test_drill_command_meets_the_goals(tmp_path, capsys):
    path = tmp_path / "drill.json"
    per_site = 17
    assert iquest(["drill", "--faults", str(per_site * len(SITES)), "--clean-steps", "10", "--seed", "3",
                   "--json", str(path), "--no-progress"]) == 0
    report = json.loads(path.read_text())
    sites = report["sites"]
    assert list(sites) == list(SITES)
    for name, c in sites.items():
        check_counts(c)
        assert c["injected"] == per_site, name
        assert set(c["by_field"]) <= {"sign", "exponent", "high_mantissa", "low_mantissa", "integer", "header"}
        for fc in c["by_field"].values():
            check_counts(fc)
        assert sum(fc["injected"] for fc in c["by_field"].values()) == c["injected"]
    for name in SITES:
        if name == "compute_recurring":
            continue
        c = sites[name]
        assert c["effective"] > 0 and c["detected_before_update"] == c["effective"], (name, c)
        assert c["rolled_back_clean"] == c["effective"] and c["named_fault_step"] == c["effective"], (name, c)
        assert set(c["latency_steps"]) <= {"0"}
    # A defect that recurs identically in the replay and strikes before the all-reduce leaves every
    # replica and every replay alike: measured, and missed.
    recurring = sites["compute_recurring"]
    assert recurring["effective"] > 0 and recurring["missed"] == recurring["effective"]
    assert len(report["missed_faults"]) == recurring["missed"]
    assert report["false_positives"] == 0 and report["clean_steps"] == 20
    assert [r["threads"] for r in report["clean_runs"]][1] == 2
    out = capsys.readouterr().out
    assert "compute_recurring" in out and "false positives over clean steps: 0/10" in out


def test_with_check_every_n_detection_is_within_n_steps():
    report = run_drill(faults=3 * len(SITES), clean_steps=0, seed=5, check_every=3, progress=False)
    for name in SITES:
        if name == "compute_recurring":
            continue
        c = report["sites"][name]
        assert c["missed"] == 0, (name, c)
        assert all(0 <= int(k) < 3 for k in c["latency_steps"]), (name, c["latency_steps"])
        assert c["rolled_back_clean"] == c["detected_before_update"] + c["detected_later"]


def test_bad_arguments_exit_with_usage(capsys):
    with pytest.raises(SystemExit) as e:
        iquest(["drill", "--faults", "-1"])
    assert e.value.code == 2 and "--faults" in capsys.readouterr().err


def test_effective_means_the_state_differs_bitwise(monkeypatch):
    """Whether a fault is effective is decided on the tensors' bits, never on the guard's fingerprint: the
    decision holds with a fingerprint blind to every difference and with one that sees differences everywhere."""
    drill = runner.Drill(seed=0)
    drill.clean_window()
    blind = lambda tensors: torch.zeros(len(tensors), 2, dtype=torch.int64)  # noqa: E731
    monkeypatch.setattr(runner, "digests_of", blind, raising=False)
    record = drill.experiment("weights")  # a flipped weight bit stays in the updated weights
    assert record["effective"] is True and record["outcome"] == "detected_before_update"
    assert record["rolled_back"] is True
    seeing_ghosts = lambda tensors: torch.randint(1 << 62, (len(tensors), 2))  # noqa: E731
    monkeypatch.setattr(runner, "digests_of", seeing_ghosts, raising=False)
    monkeypatch.setattr(step_site, "flip_bit", lambda *args: None)  # the fault flips nothing: masked
    record = drill.experiment("weights")
    assert record["effective"] is False and record["outcome"] == "missed"


def test_sites_option_limits_the_drill_to_those_sites(tmp_path, capsys):
    path = tmp_path / "drill.json"
    assert iquest(["drill", "--faults", "8", "--clean-steps", "0", "--sites", "checkpoint,checkpoint_control",
                   "--json", str(path), "--no-progress"]) == 0
    sites = json.loads(path.read_text())["sites"]
    assert list(sites) == ["checkpoint", "checkpoint_control"]
    assert [c["injected"] for c in sites.values()] == [4, 4]
    with pytest.raises(SystemExit) as e:
        iquest(["drill", "--sites", "checkpoint,nope"])
    assert e.value.code == 2 and "--sites" in capsys.readouterr().err


def test_checkpoint_site_keeps_dcp_tracebacks_of_a_corrupt_metadata_quiet(caplog):
    """A flipped bit in .metadata: both readers fail as expected, DCP's tracebacks (logged through the root
    logger) are not emitted, and a root-logger record from elsewhere still is."""
    import logging

    drill = runner.Drill(seed=0)
    drill.clean_window()
    site = checkpoint_site.CheckpointSite("metadata", 0, files=lambda p: p.name.endswith(".metadata"))
    caplog.clear()
    with checkpoint_site._quiet_dcp():
        logging.getLogger().warning("a warning from elsewhere")
    records = [site.experiment(drill) for _ in range(3)]
    shown = [r for r in caplog.records if r.levelno >= logging.WARNING and logging.getLogger(r.name).propagate]
    assert [r.getMessage() for r in shown] == ["a warning from elsewhere"]
    assert all(r["where"].endswith(".metadata") and r["outcome"] == "detected_before_update" for r in records)



def test_address_space_cap_fails_large_allocations_inside_only():
    with checkpoint_site.address_space_cap(256 << 20):
        with pytest.raises(MemoryError):
            np.empty(2 << 30, dtype=np.uint8)
        assert np.empty(16 << 20, dtype=np.uint8).size == 16 << 20
    assert np.empty(2 << 30, dtype=np.uint8).size == 2 << 30  # the cap is lifted on exit (pages untouched)


def test_unchecked_read_believing_a_huge_size_fails_instead_of_allocating(tmp_path, monkeypatch):
    """A reader that allocates what a corrupted size claims (here 4 GiB) fails under the drill's cap, so
    the load counts as failed (effective) and the drill's memory does not follow the file's claims."""
    drill = runner.Drill(seed=0)
    drill.clean_window()
    path = checkpoint_site.checkpoint.save(tmp_path, 1, drill.models[0], drill.optimizers[0], trainer_state={})
    assert checkpoint_site.CheckpointSite._loaded(drill, path) is not None
    honest = checkpoint_site.checkpoint.read

    def believes_sizes(path, model, optimizer):
        claimed = np.empty(4 << 30, dtype=np.uint8)
        return honest(path, model, optimizer) | {"claimed": claimed.size}

    monkeypatch.setattr(checkpoint_site.checkpoint, "read", believes_sizes)
    assert checkpoint_site.CheckpointSite._loaded(drill, path) is None
