"""The `iquest` command's conventions, shared by every job's argument parser.

`CommandParser` is argparse with the package's error convention: bad arguments give one line
`iquest <cmd>: error: ...` on stderr and exit status 2 (no usage block, no traceback). `run_command`
gives a job's own failures (ValueError, OSError) the same line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

EXIT_USAGE = 2


class CommandParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def fail(prog: str, error: BaseException | str) -> int:
    """Prints the one-line error of command `prog`; returns the exit status."""
    print(f"{prog}: error: {error}", file=sys.stderr)
    return EXIT_USAGE


def run_command(prog: str, job: Callable[[], int | None]) -> int:
    """Runs `job()`; a ValueError, OSError or RuntimeError it raises becomes `fail(prog, error)`."""
    try:
        return int(job() or 0)
    except (ValueError, OSError, RuntimeError) as error:
        return fail(prog, error)
