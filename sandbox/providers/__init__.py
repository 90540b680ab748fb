"""Fake provider servers, one module per connector, written from ../shared/PROTOCOLS.md."""
