"""Issue 14: the connector fault suite. With 30 % of provider requests failing (429 with Retry-After,
500, 503, resets mid-body), every letter is collected within 3 poll intervals, stored once, and
acknowledged, with a bounded number of requests per letter (figures in README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fault_bench import run


@pytest.mark.parametrize("provider", ["ngdp", "mitdk"])
async def test_thirty_percent_faults_every_letter_within_three_intervals(provider: str, tmp_path: Path) -> None:
    figures = await run(provider, rate=0.3, seed=1, folder=tmp_path)
    assert figures["intervals_to_all_collected"] is not None and figures["intervals_to_all_collected"] <= 3
    assert figures["stored"] == figures["letters"] == figures["acknowledged_in_db"]
    assert figures["left_at_provider"] == 0
    assert sum(figures["faults"].values()) > 0.2 * figures["requests"]  # the faults really happened
    assert figures["requests_per_letter"] <= 6
