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


def descendants_cpu(pid: int, seen: dict[int, float], *, besides: int | None = None) -> None:
    """Note in `seen` the CPU seconds so far of each live process below `pid` (its children, theirs…),
    but `besides` and those below it.

    The daemon's helper processes are not all reaped by it (a fork server's children end with it), so
    wait4's figure may miss them; sampled often, the last value of each is its CPU to within a sample.
    """
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    below = list(parents.get(pid, []))
    while below:
        child = below.pop()
        if child == besides:
            continue
        below.extend(parents.get(child, []))
        try:
            seen[child] = process_cpu(child)
        except (OSError, ValueError, IndexError):
            pass
