import importlib

import pytest

from iquest_core import cli


def test_unknown_or_missing_subcommand_prints_usage_and_fails(capsys):
    assert cli.main([]) == 2
    assert cli.main(["no-such-job"]) == 2
    assert "iquest drill" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_subcommand_has_a_main_taking_argv(name):
    module = importlib.import_module(cli.COMMANDS[name])
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
