"""Collector: polls every mailbox and persists what it lists, before acknowledging it."""
