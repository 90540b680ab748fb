"""The application's configuration loader: the ground's parser, then every mailbox's connector settings."""

from __future__ import annotations

from pathlib import Path

from connectors.registry import validate_mailbox
from core.config import Config
from core.configfile import load_config as parse_file


def load_config(path: Path) -> Config:
    """Read and validate `path`, each mailbox against its connector's own settings model (the ground
    knows no connector); raises core.configfile.ConfigError listing every problem."""
    return parse_file(path, mailbox_checks=(validate_mailbox,))
