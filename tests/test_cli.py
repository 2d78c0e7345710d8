import pytest

import iquest_core
from iquest_core import cli


def test_unknown_or_missing_subcommand_prints_usage_and_fails(capsys):
    assert cli.main([]) == 2
    assert "iquest drill" in capsys.readouterr().err
    assert cli.main(["no-such-job"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "iquest: error: unknown command 'no-such-job'"
    assert cli.main(["data", "nope"]) == 2
    err = capsys.readouterr().err
    assert "iquest data fim" in err and "iquest drill" not in err
    assert err.splitlines()[-1] == "iquest data: error: unknown command 'nope'"


def test_group_help_lists_its_commands(capsys):
    assert cli.main(["data", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"iquest {name}" in out for name in cli.COMMANDS if name.startswith("data "))


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"iquest {iquest_core.__version__}\n"


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_command_has_help_and_the_one_line_error(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*name.split(), "--help"])
    assert exit_info.value.code == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*name.split(), "--no-such-flag"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"iquest {name}: error: "), err


def test_a_failing_job_gives_one_line(tmp_path, capsys):
    assert cli.main(["scaling", "mix", "--law", str(tmp_path / "missing.json"), "--params", "1e9",
                     "--tokens", "1e9"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("iquest scaling mix: error: ")
