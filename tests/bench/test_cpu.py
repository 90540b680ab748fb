"""bench.cpu: the CPU of a run's helper processes, which wait4 does not always count."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

from bench.cpu import descendants_cpu

# A child that starts a grandchild from a thread other than its main one (as a process started by a
# helper thread of the daemon would be), prints the grandchild's pid, then waits.
_TREE = """\
import subprocess, sys, threading, time
started = []
thread = threading.Thread(target=lambda: started.append(subprocess.Popen([sys.executable, "-c",
                          "import time; time.sleep(30)"])))
thread.start()
thread.join()
print(started[0].pid, flush=True)
time.sleep(30)
"""


def test_every_process_below_is_found_and_nothing_else() -> None:
    with subprocess.Popen([sys.executable, "-c", _TREE], stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        grandchild = int(child.stdout.readline())
        try:
            seen: dict[int, float] = {}
            descendants_cpu(child.pid, seen)
            assert set(seen) == {grandchild}  # the process itself is not below itself
            descendants_cpu(os.getpid(), seen)
            assert {child.pid, grandchild} <= set(seen)
            assert all(cpu >= 0 for cpu in seen.values())
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(grandchild, signal.SIGKILL)
            child.kill()


def test_a_process_gone_has_nothing_below() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    seen: dict[int, float] = {}
    descendants_cpu(child.pid, seen)
    assert seen == {}
