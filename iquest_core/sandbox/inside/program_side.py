"""The program process's server (untrusted side: nothing here is relied on for the verdict). It runs the
program, then answers the test process's calls of the program's top-level callables over the channel.

Run as `python -I -S -c "...; import program_side; program_side.entry()"` with the job (wire.py) on stdin:
{"program", "limits": {name: value}, "channel_fd"}. Messages (wire.py), test process -> here:
("call", seq, name, args, kwargs) and ("finish",); here -> test process: first ("ready", callables,
modules, values) or ("not ready", why), then for each call ("return", seq, value), ("raise", seq, exception type
name, message) or ("refused", seq, why), and ("finished",) last. Exit codes: 0 finished, 1 the program
raised while loading, 3 it does not compile, 4 MemoryError.
"""

import os
import resource
import sys

import wire

EXIT_FAILED, EXIT_COMPILE, EXIT_MEMORY = 1, 3, 4


VALUES_BYTES = 1 << 20  # top-level plain-data values sent with "ready", at most


def _exports(scope: dict) -> tuple[list, dict, dict]:
    """(names of top-level callables, {name: module name} of top-level modules, {name: value} of top-level
    plain-data values, up to VALUES_BYTES encoded)."""
    callables, modules, values, budget = [], {}, {}, VALUES_BYTES
    for name, value in list(scope.items()):
        if type(name) is not str or name.startswith("__"):
            continue
        if type(value) is type(sys):
            module_name = value.__name__
            if type(module_name) is str:
                modules[name] = module_name
        elif callable(value):
            callables.append(name)
        else:
            try:
                budget -= len(wire.encode(value))
            except wire.NotPlainData:
                continue
            if budget >= 0:
                values[name] = value
    return sorted(callables), modules, values


def _answer(scope: dict, message) -> tuple:
    _, seq, name, args, kwargs = message
    try:
        value = scope[name](*args, **kwargs)
    except MemoryError:
        raise
    except BaseException as error:  # noqa: BLE001 - every way out of a call is reported to the tests
        try:
            return ("raise", seq, type(error).__name__, str(error))
        except BaseException:  # noqa: BLE001 - a __str__ that raises
            return ("raise", seq, "Exception", "")
    try:
        wire.encode(value)
    except wire.NotPlainData as refused:
        return ("refused", seq, f"return value of {name}(): {refused}")
    return ("return", seq, value)


def _serve(channel: int, scope: dict) -> None:
    while True:
        try:
            message = wire.receive(channel)
        except EOFError:  # the test process ended first
            return
        if message == ("finish",):
            wire.send(channel, ("finished",))
            return
        wire.send(channel, _answer(scope, message))


def main() -> int:
    job = wire.decode(sys.stdin.buffer.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    for name, value in job["limits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    channel = job["channel_fd"]
    try:
        code = compile(job["program"], "<program>", "exec")
    except (SyntaxError, ValueError):
        sys.__excepthook__(*sys.exc_info())  # the C traceback printer: importing `traceback` costs ~20 ms
        wire.send(channel, ("not ready", "the program does not compile"))
        return EXIT_COMPILE
    scope = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(code, scope)
        wire.send(channel, ("ready", *_exports(scope)))
        _serve(channel, scope)
    except MemoryError:
        print("MemoryError", file=sys.stderr)
        return EXIT_MEMORY
    except BaseException:  # noqa: BLE001 - every way out of the program is a failed run
        sys.__excepthook__(*sys.exc_info())
        return EXIT_FAILED
    return 0


def entry() -> None:
    """main(), then exit with its status at once: neither the program's atexit hooks nor its leftover
    threads run on."""
    status = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(status)
