"""The `postbud` command with every command and group mounted (`postbud --help`, the tests); a command
run from the command line loads its own module alone (postbud/cli/root.py)."""

from __future__ import annotations

from postbud.cli.root import GROUPS, ROOT_COMMANDS, build

app = build([*GROUPS, *ROOT_COMMANDS])
