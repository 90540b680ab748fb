"""The chaos harness at small scale: kill -9 at random moments loses, fails, leaks and duplicates nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.chaos import run_chaos


@pytest.mark.slow
@pytest.mark.timeout(170)
def test_letters_survive_random_kills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTBUD_DATABASE_URL", raising=False)
    monkeypatch.delenv("POSTBUD_KEYRING", raising=False)
    # GIVEN 48 letters from the drop folder and the three sandbox providers (NemSMS among them)
    # WHEN the daemon is killed with SIGKILL at 4 random moments, restarted, then left to finish
    report = asyncio.run(run_chaos(tmp_path, letters=48, kills=4, seed=7, max_up=3.0, finish_timeout=90))
    # THEN every letter reached its recipient, once per Message-ID, and the providers let go of all
    assert report.kills == 4
    assert report.collected == report.letters_offered == 48
    assert report.delivered == 48
    assert (report.lost, report.failed, report.stored_twice, report.different_message_ids) == (0, 0, 0, 0)
    assert (report.never_acknowledged, report.acknowledged_twice, report.plaintext_bytes_at_rest) == (0, 0, 0)
