"""The first code that runs inside the sandbox (trusted): it lowers the resource limits, reads the job from
stdin, then runs the program and its tests in one interpreter, as HumanEval's check(candidate) does.

Run as `python -I -S -c <this file>` with the job as JSON on stdin: {"program", "tests", "limits":
{name: value}, "token", "marker_fd"}. It writes "started " to marker_fd once the limits hold, and `token`
after both pieces ran to the end, so a program that exits early with status 0 (sys.exit(0), os._exit(0))
does not pass. Exit codes: 0 ran to the end, 1 an exception or SystemExit, 3 the code does not compile,
4 MemoryError. This file imports only the standard library.
"""

import json
import os
import resource
import sys

EXIT_FAILED, EXIT_COMPILE, EXIT_MEMORY = 1, 3, 4


def main() -> int:
    job = json.loads(sys.stdin.buffer.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    for name, value in job["limits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    marker = os.fdopen(job["marker_fd"], "w")
    marker.write("started ")
    marker.flush()
    try:
        pieces = [compile(job[key], f"<{key}>", "exec") for key in ("program", "tests")]
    except (SyntaxError, ValueError):
        sys.__excepthook__(*sys.exc_info())  # the C traceback printer: importing `traceback` costs ~20 ms
        return EXIT_COMPILE
    scope = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        for code in pieces:
            exec(code, scope)
    except MemoryError:
        print("MemoryError", file=sys.stderr)
        return EXIT_MEMORY
    except BaseException:  # noqa: BLE001 - every way out of the untrusted code is a failed run
        sys.__excepthook__(*sys.exc_info())
        return EXIT_FAILED
    marker.write(job["token"])
    marker.flush()
    return 0


if __name__ == "__main__":
    status = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(status)  # neither the program's atexit hooks nor its leftover threads change the verdict
