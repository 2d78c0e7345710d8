"""The drill end to end at a small size: every fault detected, named and classified, no false
positive, a JSON report, exit status 0."""

import json

import pytest

from iquest_core.reliability.drill import main


def test_small_drill(tmp_path, capsys):
    path = tmp_path / "drill.json"
    status = main(["--faults", "24", "--clean", "3", "--propagated", "6", "--timing-rounds", "3", "--json", str(path),
                   "--no-progress", "--seed", "7"])
    report = json.loads(path.read_text())
    assert status == 0
    assert report["faults"] == report["detected"] == 24 and report["missed"] == []
    assert report["clean_replays"] == 3 and report["false_positives"] == 0
    assert len(report["detection"]) == 12
    for cell in report["detection"].values():
        assert cell["injected"] == cell["detected"] == cell["named"] == cell["transient"] == 2
    spread = report["propagated"]
    assert sum(c["injected"] for c in spread["by_field"].values()) == 6
    assert "model.layers.0.self_attn.q_proj" in spread["modules"] and "model.layers.0.mlp" not in spread["modules"]
    assert report["determinism"]["equal_1_vs_2_threads"]
    assert report["overhead"]["medians"]["wall_ms"]["plain"] > 0
    out = capsys.readouterr().out
    assert "false positives: 0" in out and "activation  mantissa" in out


def test_bad_arguments_exit_with_usage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--faults", "-1"])
    assert e.value.code == 2 and "--faults" in capsys.readouterr().err
