"""CPU seconds of another process, as the benchmarks count its share (Linux /proc)."""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User plus system CPU seconds used so far by process `pid`'s threads; OSError once it is gone."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def process_io(pid: int) -> dict[str, int]:
    """/proc/PID/io of a process (its threads, and its children it has reaped): rchar, wchar, syscr,
    syscw (read and write calls of any file, socket or pipe), read_bytes, write_bytes (to storage).
    A process that has exited but is not yet reaped still answers (read it between waitid(WNOWAIT)
    and wait4); OSError once it is gone."""
    pairs = (line.split(":") for line in Path(f"/proc/{pid}/io").read_text().splitlines() if line)
    return {name.strip(): int(value) for name, value in pairs}


def descendants_cpu(pid: int, seen: dict[int, float]) -> None:
    """Note in `seen` the CPU seconds so far of each live process below `pid` (its children, theirs…).

    The daemon's helper processes are not all reaped by it (a fork server's children end with it), so
    wait4's figure may miss them; sampled often, the last value of each is its CPU to within a sample.
    Read from each process's own list of children, not a walk of all of /proc: the sampling runs
    every 50 ms beside the run it measures, on the same cores.
    """
    below = _children(pid)
    while below:
        child = below.pop()
        below.extend(_children(child))
        try:
            seen[child] = process_cpu(child)
        except (OSError, ValueError, IndexError):
            pass


def _children(pid: int) -> list[int]:
    """The processes `pid`'s threads started and that still live; none once it is gone."""
    try:
        return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()]
    except OSError:
        return []
