"""The shared fault queue and middleware: which request gets which fault, and what it looks like."""

from __future__ import annotations

import pytest

from sandbox.faults import Fault, FaultKind, Faults


def test_queued_faults_apply_in_order_then_stop() -> None:
    faults = Faults()
    faults.inject(Fault.unavailable(3), times=2)
    faults.inject(Fault.server_error())
    taken = [faults.take("GET", "/x") for _ in range(4)]
    assert [f.kind if f else None for f in taken] == [
        FaultKind.UNAVAILABLE, FaultKind.UNAVAILABLE, FaultKind.SERVER_ERROR, None]
    assert faults.pending() == 0
    assert [kind for kind, _ in faults.applied] == [FaultKind.UNAVAILABLE] * 2 + [FaultKind.SERVER_ERROR]


def test_path_and_method_filters() -> None:
    faults = Faults()
    faults.inject(Fault.truncated(), path="/memos/abc", method="get")
    assert faults.take("GET", "/memos/") is None
    assert faults.take("DELETE", "/memos/abc") is None
    fault = faults.take("GET", "/apis/v1/memos/abc")
    assert fault is not None and fault.kind is FaultKind.TRUNCATED


def test_rate_is_deterministic_by_seed() -> None:
    def run(seed: int) -> list[FaultKind | None]:
        faults = Faults(seed=seed)
        faults.set_rate(0.3)
        return [(f.kind if (f := faults.take("GET", "/")) else None) for _ in range(200)]

    first = run(1)
    assert first == run(1) and first != run(2)
    assert 30 < sum(k is not None for k in first) < 90


def test_rate_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="0..1"):
        Faults().set_rate(1.5)


def test_clear_forgets_everything() -> None:
    faults = Faults()
    faults.inject(Fault.latency(0.1), times=5)
    faults.set_rate(1.0)
    faults.clear()
    assert faults.take("GET", "/") is None and faults.applied == []
