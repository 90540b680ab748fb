"""bench.e2e's options: a combination it cannot honour ends in one usage line and exit 2, before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("args", "says"), [
    (["--gil"], "--gil samples with py-spy: give --py-spy FILE too"),
    (["--instances", "2"], "--instances above 1 needs --database postgresql://"),
])
def test_an_option_it_cannot_honour_is_refused_in_one_line(args: list[str], says: str) -> None:
    done = subprocess.run([sys.executable, "-m", "bench.e2e", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert says in done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr and "letters written" not in done.stdout
