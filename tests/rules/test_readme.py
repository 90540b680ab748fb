"""The grammar examples in rules/README.md are valid rule files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rules.loader import check

if TYPE_CHECKING:
    from .conftest import WriteRules

README = Path(__file__).resolve().parents[2] / "rules" / "README.md"
BLOCKS = re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


@pytest.mark.parametrize("block", [b for b in BLOCKS if "[[case]]" not in b])
def test_readme_example_checks_clean(rules_dir: WriteRules, block: str) -> None:
    if "[[rule]]" not in block:  # a condition fragment: wrap it into a rule
        block = f'[[rule]]\nname = "fragment"\nroute = ["x"]\n{block}'
    assert [str(i) for i in check(rules_dir(example=block))] == []


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 4
