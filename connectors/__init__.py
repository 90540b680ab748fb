"""Connectors: how postbud talks to each mailbox provider (the contract is in `connectors.base`)."""
