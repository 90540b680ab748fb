"""Each letter's parse runs in a killable worker under one time and memory budget; overruns are quarantined."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from connectors import watchdog
from connectors.base import PermanentError
from core.metrics import IN_FLIGHT, Metrics
from tests.connectors.hostile import workloads


@pytest.fixture
def pool() -> Iterator[watchdog.ParsePool]:
    pool = watchdog.ParsePool(watchdog.Budget(seconds=2.0, memory_bytes=512 * 1024 * 1024, workers=1))
    yield pool
    pool.close()


async def test_a_call_over_the_time_budget_is_killed_and_the_next_call_runs(pool: watchdog.ParsePool) -> None:
    first = await pool.run(workloads.pid)
    before = IN_FLIGHT.overruns()["time"]
    started = time.monotonic()
    with pytest.raises(watchdog.BudgetExceeded, match="longer than the budget of 2 s") as caught:
        await pool.run(workloads.sleep_forever, b"")
    assert caught.value.reason == "time"
    assert time.monotonic() - started < 6
    assert IN_FLIGHT.overruns()["time"] == before + 1
    # A fresh worker took over; the stuck one is gone.
    assert await pool.run(workloads.echo, "next letter") == "next letter"
    assert await pool.run(workloads.pid) != first


async def test_a_call_over_the_memory_budget_is_quarantined() -> None:
    # Its own pool with a generous deadline: on a loaded machine the time budget must not fire first.
    pool = watchdog.ParsePool(watchdog.Budget(seconds=60.0, memory_bytes=512 * 1024 * 1024, workers=1))
    try:
        await _memory_case(pool)
    finally:
        pool.close()


async def _memory_case(pool: watchdog.ParsePool) -> None:
    with pytest.raises(watchdog.BudgetExceeded, match="memory budget of 512 MB") as caught:
        await pool.run(workloads.hog_memory, 2048)
    assert caught.value.reason == "memory"
    assert await pool.run(workloads.hog_memory, 16) == 16


@pytest.mark.parametrize("code", [-9, 3])
async def test_a_crashing_parser_is_quarantined(pool: watchdog.ParsePool, code: int) -> None:
    with pytest.raises(watchdog.BudgetExceeded, match="parser process died") as caught:
        await pool.run(workloads.crash, code)
    assert caught.value.reason == "crash"
    assert await pool.run(workloads.echo, 1) == 1


async def test_any_exception_inside_is_one_permanent_error(pool: watchdog.ParsePool) -> None:
    with pytest.raises(PermanentError, match="nested too deeply"):
        await pool.run(workloads.recurse, 100_000)
    with pytest.raises(PermanentError, match="ZeroDivisionError"):
        await pool.run(divmod, 1, 0)


async def test_workers_are_reused_not_spawned_per_letter(pool: watchdog.ParsePool) -> None:
    pids = {await pool.run(workloads.pid) for _ in range(20)}
    assert len(pids) == 1
    started = time.monotonic()
    for _ in range(200):
        await pool.run(workloads.echo, b"x" * 10_000)
    per_call = (time.monotonic() - started) / 200
    assert per_call < 0.01  # the overhead of a reused worker, far from a process start


async def test_a_stuck_parse_shows_in_the_metrics_while_it_runs(pool: watchdog.ParsePool) -> None:
    from prometheus_client import generate_latest

    task = asyncio.ensure_future(pool.run(workloads.sleep_forever, b""))
    await asyncio.sleep(1.2)
    exposed = generate_latest(Metrics().registry).decode()
    line = next(x for x in exposed.splitlines() if x.startswith('postbud_stage_oldest_running_seconds{stage="parse"}'))
    assert float(line.split()[-1]) >= 1.0
    with pytest.raises(watchdog.BudgetExceeded):
        await task


async def test_closing_the_pool_ends_waiting_letters_as_transient() -> None:
    from connectors.base import TransientError

    pool = watchdog.ParsePool(watchdog.Budget(seconds=60.0, workers=1))
    task = asyncio.ensure_future(pool.run(workloads.sleep_forever, b""))
    await asyncio.sleep(1.0)
    started = time.monotonic()
    pool.close()
    with pytest.raises(TransientError):
        await task
    assert time.monotonic() - started < 5


async def test_workers_started_ahead_serve_the_first_letter() -> None:
    # GIVEN the process-wide pool's workers started before any letter (`postbud run` does this at start)
    watchdog.configure(watchdog.Budget(seconds=30.0, memory_bytes=512 * 1024 * 1024, workers=2))
    try:
        watchdog.warm_up()
        deadline = time.monotonic() + 20
        while len(watchdog.worker_pids()) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        # THEN both run already, and the first letters go to them rather than to new ones
        ahead = set(watchdog.worker_pids())
        assert len(ahead) == 2
        assert {await watchdog.run(workloads.pid) for _ in range(6)} <= ahead
    finally:
        watchdog.shutdown()


async def test_a_pdf_stuck_in_the_reader_ends_its_letters_pdfs_and_retires_the_worker() -> None:
    from tests.connectors.test_text import make_pdf

    # Its own pool with a generous budget: on a loaded machine only the stuck PDF may run out of time.
    pool = watchdog.ParsePool(watchdog.Budget(seconds=60.0, memory_bytes=512 * 1024 * 1024, workers=1))
    try:
        # GIVEN a letter whose second PDF never comes back from the PDF reader (it may take 0.5 s)
        pdfs = [(make_pdf(["Brev"]), 20.0), (make_pdf(["hostile"]), 0.5), (make_pdf(["Bilag"]), 20.0)]
        texts, pid, readers = await pool.run(workloads.pdfs_with_one_that_hangs, pdfs)
        # THEN the letter keeps the first PDF's text, the PDFs after the stuck one yield nothing (no second
        # thread may enter PDFium beside it), and the worker is replaced after this letter
        assert texts == ["Brev", "", ""]
        assert readers == 1
        assert await pool.run(workloads.pid) != pid
    finally:
        pool.close()


async def test_a_letter_whose_pdf_crashes_pdfium_is_read_again_with_pypdf() -> None:
    from tests.connectors.test_text import make_pdf

    # A generous budget: the fresh worker imports pypdf within the letter's time on a loaded machine.
    pool = watchdog.ParsePool(watchdog.Budget(seconds=60.0, memory_bytes=512 * 1024 * 1024, workers=1))
    try:
        first = await pool.run(workloads.pid)
        # WHEN PDFium takes its worker down with it on a letter's PDF
        text, pid = await pool.run(workloads.text_of_pdf_that_aborts_pdfium, make_pdf(["Brev"]))
        # THEN the letter is read once more in a fresh worker, its PDF by pypdf, and nothing is quarantined
        assert text == "Brev" and pid != first
    finally:
        pool.close()


def _pdf_bomb(inflated_mb: int) -> bytes:
    """One page whose content stream inflates to `inflated_mb` MB of path operators."""
    import zlib

    packer = zlib.compressobj(9)
    chunk = b"0 0 m " * (1024 * 1024 // 6)
    data = b"".join(packer.compress(chunk) for _ in range(inflated_mb)) + packer.flush()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
               b"<< /Filter /FlateDecode /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 5\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return bytes(out + b"trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref)


async def test_a_pdf_bomb_is_a_letter_without_text_not_a_dead_worker() -> None:
    from connectors.text import extract_text
    from core.domain import File

    pool = watchdog.ParsePool(watchdog.Budget(seconds=60.0, memory_bytes=256 * 1024 * 1024, workers=1))
    try:
        # GIVEN a PDF whose one content stream inflates to 320 MB, over the worker's 256 MB
        text = await pool.run(extract_text, File("bomb.pdf", "application/pdf", _pdf_bomb(320)))
    finally:
        pool.close()
    # THEN PDFium's abort costs one worker, and pypdf, capped, reads no text: the letter goes on
    assert text == ""


async def test_a_typed_error_inside_comes_back_typed_with_its_evidence_and_the_worker_stays(
        pool: watchdog.ParsePool) -> None:
    from connectors.base import TransientError

    # GIVEN a worker that has served a letter
    first = await pool.run(workloads.pid)
    # WHEN a call refuses its letter with the bytes it read, or fails for now
    # THEN the caller gets the same kinds of error, the refused letter's bytes kept as its evidence
    with pytest.raises(PermanentError, match="not a letter") as caught:
        await pool.run(workloads.refuse, b"%PDF-1.7 not a letter")
    assert caught.value.raw == b"%PDF-1.7 not a letter"
    with pytest.raises(TransientError, match="try again"):
        await pool.run(workloads.fail_for_now, "try again")
    # AND neither cost the worker
    assert await pool.run(workloads.pid) == first


async def test_calls_from_a_second_event_loop_are_served(pool: watchdog.ParsePool) -> None:
    # GIVEN a pool whose workers an event loop in another thread drives
    import threading

    started, stop = threading.Event(), threading.Event()
    loop = asyncio.new_event_loop()

    def drive() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        loop.run_until_complete(asyncio.to_thread(stop.wait))

    thread = threading.Thread(target=drive)
    thread.start()
    try:
        started.wait(10)
        driver_pid = asyncio.run_coroutine_threadsafe(pool.run(workloads.pid), loop).result(30)
        # WHEN this loop calls it meanwhile
        # THEN the call runs on the same worker, handed to the loop that drives it
        assert await pool.run(workloads.echo, "beside") == "beside"
        assert await pool.run(workloads.pid) == driver_pid
    finally:
        stop.set()
        thread.join(10)
        loop.close()


def test_the_workers_fork_server_imports_the_parsers_without_pydantic() -> None:
    # GIVEN the modules the fork server preloads for every worker
    import subprocess
    import sys

    from connectors.parse_pool import _PRELOAD

    # WHEN they are imported in a fresh interpreter
    probe = (f"import importlib, sys\nfor name in {_PRELOAD!r}:\n    importlib.import_module(name)\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'sqlalchemy', 'sqlmodel')))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    # THEN neither pydantic nor the database layers come with them (connectors.errors, not connectors.base,
    # gives the parsers their errors): each worker's start stays short
    assert done.stdout.strip() == "[]"
