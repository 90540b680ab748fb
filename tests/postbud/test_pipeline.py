"""run --once's stages side by side (postbud/pipeline.py), driven by stand-in stages over counters."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import pytest

from postbud.pipeline import STAGE, Pipeline, StagedExecutor, Stages

GROUP = 2  # letters a route or deliver step takes


@dataclass
class Mailroom:
    """Letters waiting at a provider, collected, routed, delivered; acknowledged ones after delivery."""

    waiting: int = 0
    collected: int = 0
    routed: int = 0
    delivered: int = 0
    acknowledged: int = 0
    passes: int = 0
    log: list[str] = field(default_factory=list)

    async def collect(self) -> int:
        """One pass: each waiting letter in a group of its own; letters delivered since are let go."""
        self.passes += 1
        moved = 0
        while self.waiting:
            self.waiting -= 1
            self.collected += 1
            moved += 1
            await asyncio.sleep(0)
        let_go, self.acknowledged = self.delivered - self.acknowledged, self.delivered
        return moved + let_go

    async def route(self) -> int:
        n = min(GROUP, self.collected)
        self.collected -= n
        self.routed += n
        if n:
            self.log.append(f"route during pass {self.passes}")
        await asyncio.sleep(0)
        return n

    async def deliver(self) -> int:
        n = min(GROUP, self.routed)
        self.routed -= n
        self.delivered += n
        await asyncio.sleep(0)
        return n

    def stages(self) -> Stages:
        return Stages(collect=self.collect, route=self.route, deliver=self.deliver)


async def test_every_letter_is_delivered_and_let_go_and_the_run_ends_after_a_pass_that_moved_nothing() -> None:
    # GIVEN letters waiting at a provider that lets go of a letter only after its delivery
    room = Mailroom(waiting=9)
    # WHEN the pipeline runs
    moved = await asyncio.wait_for(Pipeline(room.stages(), asyncio.Event()).run(), timeout=10)
    # THEN every letter was collected, routed, delivered and let go, and each move counted
    assert (room.collected, room.routed, room.delivered, room.acknowledged) == (0, 0, 9, 9)
    assert moved == 9 * 4
    # AND the last pass found nothing (the one before let go of the delivered letters)
    assert room.passes >= 3


async def test_routing_takes_collected_letters_while_the_collect_pass_is_still_under_way() -> None:
    # GIVEN a collect pass that hands over one group and goes on only once routing has taken it
    room = Mailroom()
    taken = asyncio.Event()

    async def collect() -> int:
        if room.passes == 0:
            room.passes += 1
            room.collected += GROUP
            await taken.wait()  # stages one after another would never get here
            room.collected += GROUP
            return 2 * GROUP
        return await room.collect()

    async def route() -> int:
        n = await room.route()
        if n:
            taken.set()
        return n

    # WHEN the pipeline runs, looking for collected letters often
    stages = Stages(collect=collect, route=route, deliver=room.deliver)
    await asyncio.wait_for(Pipeline(stages, asyncio.Event(), look_seconds=0.01).run(), timeout=10)
    # THEN the first group was routed during the first pass, and everything was delivered
    assert room.log[0] == "route during pass 1"
    assert room.delivered == 2 * GROUP


async def test_letters_arriving_while_delivery_runs_get_one_pass_more() -> None:
    # GIVEN letters that arrive at the provider while the first ones are being delivered
    room = Mailroom(waiting=3)
    deliver, arrived = room.deliver, False

    async def deliver_and_receive() -> int:
        nonlocal arrived
        n = await deliver()
        if n and not arrived:
            arrived, room.waiting = True, room.waiting + 4
        return n

    stages = Stages(collect=room.collect, route=room.route, deliver=deliver_and_receive)
    # WHEN the pipeline runs
    await asyncio.wait_for(Pipeline(stages, asyncio.Event()).run(), timeout=10)
    # THEN the late letters were delivered too
    assert (room.waiting, room.delivered, room.acknowledged) == (0, 7, 7)


async def test_a_stage_that_fails_ends_the_run_with_its_error() -> None:
    room = Mailroom(waiting=3)

    async def broken() -> int:
        raise RuntimeError("routing broke")

    with pytest.raises(RuntimeError, match="routing broke"):
        await asyncio.wait_for(Pipeline(Stages(room.collect, broken, room.deliver), asyncio.Event()).run(),
                               timeout=10)


async def test_stop_ends_the_run_after_the_steps_under_way() -> None:
    # GIVEN a provider that never runs dry
    room = Mailroom()
    stop = asyncio.Event()

    async def collect() -> int:
        room.collected += 1
        await asyncio.sleep(0.01)
        if room.delivered >= 3:
            stop.set()  # SIGTERM
        return 1

    # WHEN the daemon is told to stop, THEN the run ends
    await asyncio.wait_for(Pipeline(Stages(collect, room.route, room.deliver), stop).run(), timeout=10)
    assert room.delivered >= 3


async def test_routing_and_delivery_block_on_threads_of_their_own() -> None:
    # GIVEN the staged executor as the loop's default
    loop = asyncio.get_running_loop()
    executor = StagedExecutor(2, 1)
    loop.set_default_executor(executor)

    async def where(stage: str | None) -> str:
        if stage is not None:
            STAGE.set(stage)
        return await asyncio.to_thread(lambda: threading.current_thread().name)

    # WHEN each stage's task makes a blocking call, THEN routing's and delivery's run behind the collector's
    names = await asyncio.gather(asyncio.create_task(where(None)), asyncio.create_task(where("route")),
                                 asyncio.create_task(where("deliver")))
    assert not names[0].startswith("postbud-behind")
    assert names[1].startswith("postbud-behind") and names[2].startswith("postbud-behind")
    await loop.shutdown_default_executor()
