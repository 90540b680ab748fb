"""The `postbud` command line. Its error style (one line, exit 2 for usage, 1 for failure, a traceback
only with `--debug` anywhere on the line) is `postbud.cli.common.OperatorGroup`'s."""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence

# Optional parts of libraries that `postbud` never uses, kept from loading as if not installed (each
# import of them falls back on ImportError): httpx's own command line, which imports click, pygments
# and rich's progress bars when they are there (40 ms of every start), and trio, which httpcore
# imports when it is installed (only the test extras bring it, for selenium; 45 ms).
_UNUSED_MODULES = ("httpx._main", "trio")


def invoke(argv: Sequence[str]) -> int:
    """Run `postbud ARGV...` and return its exit code; what `main` and the tests call."""
    args = list(argv)
    if "--debug" in args:  # allowed anywhere: the root option it is, in front
        args = ["--debug", *(a for a in args if a != "--debug")]
    # No collection while the command's modules are imported: they leave no garbage worth the time
    # (30-40 ms of `run`'s start-up went to collections there; `run` keeps collection off for the
    # daemon's own imports too, postbud/cli/run.py).
    collecting = gc.isenabled()
    gc.disable()
    try:
        from typer.exceptions import Exit, TyperException

        from postbud.cli.common import FAILURE, USAGE, say
        from postbud.cli.root import app_for

        app = app_for(args)
    finally:
        if collecting:
            gc.enable()
    try:
        code = app(args=args, prog_name="postbud", standalone_mode=False)
    except Exit as exc:
        return int(exc.exit_code)
    except TyperException as exc:  # a usage error of the root itself, before any sub-command
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `postbud`: the help is the answer
            exc.show()  # type: ignore[attr-defined]  # click's NoArgsIsHelpError has show(); typer's base type does not say so
            return USAGE
        message = exc.format_message() if hasattr(exc, "format_message") else "aborted"
        say(" ".join(message.split()).rstrip(".") + "; see `postbud --help`")
        return int(getattr(exc, "exit_code", FAILURE))
    return int(code or 0)


def main() -> None:
    for unused in _UNUSED_MODULES:
        sys.modules.setdefault(unused, None)  # type: ignore[arg-type]  # what the import system reads as absent
    code = invoke(sys.argv[1:])
    # Whatever is left goes with the process. Without this the interpreter's teardown runs full
    # collections over every object still alive: 0.3-0.4 s of CPU after a run --once (most of its
    # closing), for memory the exit returns anyway. Finalizers still run for what teardown frees;
    # only cycles are left uncollected, and everything postbud writes is closed by then.
    gc.freeze()
    sys.exit(code)
