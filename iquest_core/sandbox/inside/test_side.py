"""The test process's runner (trusted side). It never runs program code: the program's top-level callables
are proxies whose calls cross the channel as plain data (wire.py), and its verdict goes to a pipe that
only this process holds.

Run as `python -I -S -c "...; import test_side; test_side.entry()"` with the job (wire.py) on stdin:
{"tests", "channel_fd", "result_fd"}. The tests run in a fresh namespace holding, besides the builtins:
a `ProgramFunction` proxy for each callable the program exported, a copy of each top-level plain-data value
(as it was when the program finished loading) and this process's own import of each standard-library
module the program had at top level, except names that are builtins or dunders (so the
program cannot stand in for `abs`, `isinstance`, `AssertionError`, ...); whatever the tests define
themselves replaces those. The verdict, one wire-encoded dict {"status": "passed" | "failed" | "error",
"reason", "program_gone"} on result_fd, is "passed" only when the program finished loading, the tests ran to the end,
and the program was still there to acknowledge the end ("finish" / "finished") afterwards.
"""

import builtins
import os
import sys

import wire

# Exceptions raised by the program that the tests see as themselves (so `except ValueError` in a test
# works); any other type arrives as ProgramError.
MIRRORED = {cls.__name__: cls for cls in (
    ArithmeticError, AssertionError, AttributeError, IndexError, KeyError, LookupError, NameError,
    NotImplementedError, OverflowError, RecursionError, RuntimeError, TypeError, UnicodeError, ValueError,
    ZeroDivisionError)}
_UNIMPORTABLE = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "webbrowser"}


class ProgramError(Exception):
    """The program raised an exception of a type the tests do not see as itself."""


class ProgramGone(BaseException):
    """The program process ended, or broke the protocol: not an Exception, so `except Exception` in a test
    does not swallow it (and the end-of-run acknowledgement fails anyway)."""


class Channel:
    def __init__(self, fd: int) -> None:
        self.fd, self.seq, self.broken = fd, 0, None

    def exchange(self, message):
        if self.broken is not None:
            raise ProgramGone(self.broken)
        try:
            wire.send(self.fd, message)
            return wire.receive(self.fd)
        except (OSError, EOFError, wire.WireError) as error:
            self.broken = f"the program process is gone or broke the protocol: {error}"
            raise ProgramGone(self.broken) from None

    def fail(self, why: str):
        self.broken = why
        raise ProgramGone(why)

    def call(self, name: str, args: tuple, kwargs: dict):
        self.seq += 1
        reply = self.exchange(("call", self.seq, name, args, kwargs))
        if type(reply) is not tuple or len(reply) not in (3, 4) or reply[1] != self.seq:
            self.fail(f"malformed reply to a call of {name}()")
        kind = reply[0]
        if kind == "return" and len(reply) == 3:
            return reply[2]
        if kind == "refused" and len(reply) == 3 and type(reply[2]) is str:
            raise wire.NotPlainData(reply[2])
        if kind == "raise" and len(reply) == 4 and type(reply[2]) is str and type(reply[3]) is str:
            mirrored = MIRRORED.get(reply[2])
            if mirrored is not None:
                raise mirrored(reply[3])
            raise ProgramError(f"{reply[2]}: {reply[3]}")
        self.fail(f"malformed reply to a call of {name}()")


class ProgramFunction:
    """Stands for the program's top-level callable `name`: calling it sends the (plain data) arguments to
    the program process and returns its (plain data) result."""

    __slots__ = ("__name__", "_channel")

    def __init__(self, name: str, channel: Channel) -> None:
        self.__name__, self._channel = name, channel

    def __call__(self, *args, **kwargs):
        wire.encode((args, kwargs))  # NotPlainData here, in the tests, when they pass anything else
        return self._channel.call(self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<program function {self.__name__}>"


def _bindable(name) -> bool:
    return type(name) is str and name.isidentifier() and not name.startswith("__") and not hasattr(builtins, name)


def namespace(hello, channel: Channel) -> dict:
    """The tests' globals from the program's ("ready", callables, modules, values) message."""
    if type(hello) is not tuple or len(hello) != 4 or hello[0] != "ready" or type(hello[1]) is not list \
            or type(hello[2]) is not dict or type(hello[3]) is not dict:
        channel.fail(f"the program did not finish loading ({hello!r:.200})")
    scope = {"__name__": "__main__", "__builtins__": builtins}
    for name, module in hello[2].items():
        if _bindable(name) and type(module) is str and module in sys.stdlib_module_names \
                and module not in _UNIMPORTABLE:
            try:
                scope[name] = __import__(module)
            except ImportError:
                pass
    for name, value in hello[3].items():
        if _bindable(name):
            scope[name] = value
    for name in hello[1]:
        if _bindable(name):
            scope[name] = ProgramFunction(name, channel)
    return scope


def run(tests: str, channel: Channel) -> tuple[str, str]:
    try:
        code = compile(tests, "<tests>", "exec")
    except (SyntaxError, ValueError):
        sys.__excepthook__(*sys.exc_info())
        return "error", "the tests do not compile"
    try:
        hello = wire.receive(channel.fd)
    except (OSError, EOFError, wire.WireError) as error:
        channel.broken = f"the program did not finish loading ({error})"
        return "failed", channel.broken
    try:
        exec(code, namespace(hello, channel))
        if channel.exchange(("finish",)) != ("finished",):
            channel.fail("the program did not acknowledge the end of the tests")
    except BaseException:  # noqa: BLE001 - any way out of the tests but their end is a failure
        sys.__excepthook__(*sys.exc_info())
        return "failed", "the tests raised" if channel.broken is None else channel.broken
    if channel.broken is not None:  # the tests swallowed a ProgramGone
        return "failed", channel.broken
    return "passed", ""


def entry() -> None:
    job = wire.decode(sys.stdin.buffer.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    channel = Channel(job["channel_fd"])
    status, reason = run(job["tests"], channel)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    wire.send(job["result_fd"], {"status": status, "reason": reason, "program_gone": channel.broken is not None})
    os._exit(0)
