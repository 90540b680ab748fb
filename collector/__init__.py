"""Floor 3, collector: polls every mailbox and persists what it lists before acknowledging it.

Leases shared between instances (`leases.py`), bounded concurrency and back-off (`dispatch.py`,
`poll.py`, `breaker.py`), the writes (`ledger.py`), connector state (`state.py`).
"""
