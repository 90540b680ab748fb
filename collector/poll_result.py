"""What one poll did, and the request budget it spends (`collector.poll`)."""

from __future__ import annotations


class BudgetSpent(Exception):
    """The poll used its request budget; the rest waits for the next poll."""


class PollResult:
    def __init__(self, budget: int) -> None:
        self.collected = 0
        self.quarantined = 0
        self.skipped = 0
        self.acknowledged = 0
        self.newly_acknowledged = 0  # acknowledged for the first time (not a repeat of an earlier one)
        self.awaiting_delivery = 0
        self.failed = 0  # messages whose fetch or acknowledgement still failed after the retries
        self.budget = budget
        self.requests = 0
        self.more = False  # stopped by the budget with listing left
        self.retry_after: float | None = None  # the longest wait a provider asked for

    @property
    def progressed(self) -> bool:
        return bool(self.collected or self.quarantined or self.acknowledged)

    @property
    def new_work(self) -> int:
        """Letters this poll moved on for good (stored, quarantined, let go of at the provider for the
        first time); a listing that only repeats what is known counts nothing."""
        return self.collected + self.quarantined + self.newly_acknowledged

    def spend(self) -> None:
        if self.requests >= self.budget:
            raise BudgetSpent()
        self.requests += 1
