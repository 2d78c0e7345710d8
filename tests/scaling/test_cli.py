import csv
import re
import json

import numpy as np
import pytest

from iquest_core.scaling import MultilingualLaw, PowerLawFit
from iquest_core.scaling import io
from iquest_core.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
TRUE = {"python": dict(A=60.0, alpha=0.45, B=25.0, beta=0.22, E=0.8),
        "c": dict(A=40.0, alpha=0.38, B=30.0, beta=0.25, E=0.6)}


def write_synthetic_runs(path, rng):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["language", "params", "tokens", "loss", "wall_s"])
        for lang, p in TRUE.items():
            for n in np.geomspace(1e4, 1e8, 6):
                for d in np.geomspace(1e5, 1e9, 6):
                    loss = (p["A"] * n ** -p["alpha"] + p["B"] * d ** -p["beta"] + p["E"]) * (1 + 0.003 * rng.normal())
                    writer.writerow([lang, n, d, loss, 1.0])


def test_fit_writes_a_law_that_recovers_each_language_and_its_plots(tmp_path, capsys):
    write_synthetic_runs(tmp_path / "runs.csv", np.random.default_rng(1))
    assert main(["scaling", "fit", str(tmp_path / "runs.csv"), "--output", str(tmp_path / "out"), "--bootstrap", "8"]) == 0
    law = io.load_law(tmp_path / "out" / "law.json")
    assert law.languages == ["python", "c"] and law.gamma == 0.0 and law.tau == {}
    for lang, true in TRUE.items():
        fit = law.per_language[lang]
        for name in ("alpha", "beta", "E"):
            assert getattr(fit, name) == pytest.approx(true[name], rel=0.05)
            assert fit.ci[name][0] <= getattr(fit, name) <= fit.ci[name][1]
    for name in ("loss.png", "iso_loss.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == PNG
    assert "alpha=" in capsys.readouterr().out


def test_mix_prints_a_mixture_better_than_uniform_and_single_languages(tmp_path, capsys):
    fits = {"python": PowerLawFit(A=400, alpha=0.34, B=410, beta=0.28, E=1.70),
            "java": PowerLawFit(A=300, alpha=0.32, B=600, beta=0.30, E=1.66),
            "c": PowerLawFit(A=500, alpha=0.36, B=300, beta=0.26, E=1.74)}
    io.save_law(tmp_path / "law.json", MultilingualLaw(fits, tau={("python", "java"): 0.6, ("java", "c"): 0.4},
                                                       gamma=1.0))
    argv = ["scaling", "mix", "--law", str(tmp_path / "law.json"), "--params", "1e9", "--tokens", "2e10",
            "--languages", "python,java,c", "--min-share", "0.05", "--output", str(tmp_path / "mix")]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["loss"] < report["uniform_loss"]
    assert all(report["loss"] < loss for loss in report["single_language_loss"].values())
    assert min(report["mixture"].values()) >= 0.05 - 1e-12
    assert json.loads((tmp_path / "mix" / "mixture.json").read_text()) == report
    assert (tmp_path / "mix" / "mixture.png").read_bytes()[:8] == PNG


def test_law_json_round_trip_keeps_fits_intervals_and_transfer():
    fit = PowerLawFit(A=1.5, alpha=0.3, B=2.5, beta=0.2, E=0.7, ci={"alpha": (0.25, 0.35)}, confidence=0.9,
                      n_points=9)
    law = MultilingualLaw({"go": fit, "rust": fit}, tau={("go", "rust"): 0.2, ("rust", "go"): 0.1}, gamma=0.3)
    back = io.law_from_dict(json.loads(json.dumps(io.law_to_dict(law))))
    assert back.per_language == law.per_language and back.tau == law.tau and back.gamma == law.gamma


@pytest.mark.parametrize("rows, match", [
    ("language,params,loss\npython,1,2\n", "missing column"),
    ("language,params,tokens,loss\npython,1e6,-5,2\n", "line 2: tokens"),
    ("language,params,tokens,loss\npython,1e6,1e7,abc\n", "line 2: loss"),
    ("language,params,tokens,loss\n", "no runs"),
    ("language,params,tokens,loss\npython,1e6,1e7,2\n", "language 'python'.*at least 6"),
])
def test_fit_refuses_bad_csv_naming_the_problem(tmp_path, capsys, rows, match):
    (tmp_path / "runs.csv").write_text(rows)
    assert main(["scaling", "fit", str(tmp_path / "runs.csv"), "--output", str(tmp_path / "out")]) == 2
    assert re.search(match, capsys.readouterr().err)


def test_mix_refuses_an_unknown_language_and_a_bad_law_file(tmp_path, capsys):
    fit = PowerLawFit(A=1.5, alpha=0.3, B=2.5, beta=0.2, E=0.7)
    io.save_law(tmp_path / "law.json", MultilingualLaw({"go": fit}))
    assert main(["scaling", "mix", "--law", str(tmp_path / "law.json"), "--params", "1e9", "--tokens", "1e9",
                 "--languages", "go,cobol"]) == 2
    assert "cobol" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"per_language": {"go": {"A": 1}}}')
    assert main(["scaling", "mix", "--law", str(tmp_path / "bad.json"), "--params", "1e9", "--tokens", "1e9"]) == 2
    assert "per_language['go']" in capsys.readouterr().err


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    with pytest.raises(TypeError):
        io.write_atomic(tmp_path / "x.json", 42)
    assert list(tmp_path.iterdir()) == []
    io.write_atomic(tmp_path / "x.json", "ok")
    assert (tmp_path / "x.json").read_text() == "ok" and len(list(tmp_path.iterdir())) == 1
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644
