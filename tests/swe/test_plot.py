"""`iquest swe plot`: the runs' metrics side by side, and a directory without metrics named."""

import json

import pytest

from iquest_core.swe.plot import plot_main


def _run(path, rates):
    path.mkdir()
    path.joinpath("metrics.jsonl").write_text("".join(
        json.dumps({"step": i + 1, "resolved_rate": r, "right_fix_p": r / 2, "valid_actions": 1 - r}) + "\n"
        for i, r in enumerate(rates)))
    return str(path)


def test_plot_writes_one_figure_of_every_run(tmp_path, capsys):
    runs = [_run(tmp_path / "GRPO-seed0", [0.1, 0.3]), _run(tmp_path / "control-seed0", [0.1, 0.1])]
    assert plot_main([*runs, "--output", str(tmp_path / "fig" / "p.png")]) == 0
    assert (tmp_path / "fig" / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert capsys.readouterr().out.strip() == str(tmp_path / "fig" / "p.png")


def test_a_run_without_metrics_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="RUN_DIR: no metrics.jsonl in .*empty"):
        plot_main([str(tmp_path / "empty"), "--output", str(tmp_path / "p.png")])
    assert not (tmp_path / "p.png").exists()
