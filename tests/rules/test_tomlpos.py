"""Key and value positions of TOML documents, which tomllib does not give."""

from __future__ import annotations

import tomllib
from pathlib import Path

from core.tomlpos import locate

EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples"

DOC = '''# comment
[lookup.department]
"økonomi" = "finance"   # trailing comment
hr = ["hr", 'people']

[[rule]]
name = "tax \\"letters\\""
when.sender.id = ["12345678",
   "87654321"]
s = """multi
"line" = [x] """
route = ["finance"]

[[rule]]
  name = 'b'
  when = { title = { regex = '(?P<d>\\w+)' }, any = [ {text.any = ["x"]}, { mailbox = "m" } ] }
  at = 1979-05-27 07:32:00Z

[[rule]]
[rule.when.not]
sender.id = "1"
[[rule.when.any]]
title = "x"
'''


def test_positions_of_keys_values_and_array_elements() -> None:
    tomllib.loads(DOC)  # the scanner's precondition: valid TOML
    pos = locate(DOC)
    assert pos.keys[("lookup", "department")] == (2, 1)
    assert pos.keys[("lookup", "department", "økonomi")] == (3, 1)
    assert pos.values[("lookup", "department", "økonomi")] == (3, 13)
    assert pos.values[("lookup", "department", "hr", 1)] == (4, 13)
    assert pos.keys[("rule", 0)] == (6, 1)
    assert pos.values[("rule", 0, "name")] == (7, 8)
    assert pos.keys[("rule", 0, "when", "sender", "id")] == (8, 13)
    assert pos.values[("rule", 0, "when", "sender", "id", 1)] == (9, 4)
    assert pos.keys[("rule", 0, "route")] == (12, 1)  # after a multi-line string holding "= [x]"
    assert pos.keys[("rule", 1, "name")] == (15, 3)
    assert pos.values[("rule", 1, "when", "title", "regex")] == (16, 30)
    assert pos.keys[("rule", 1, "when", "any", 0, "text", "any")] == (16, 60)
    assert pos.values[("rule", 1, "when", "any", 1, "mailbox")] == (16, 86)
    assert pos.values[("rule", 1, "at")] == (17, 8)
    assert pos.keys[("rule", 2)] == (19, 1)
    assert pos.keys[("rule", 2, "when", "not", "sender", "id")] == (21, 8)
    assert pos.keys[("rule", 2, "when", "any", 0, "title")] == (23, 1)


def test_missing_paths_fall_back_to_the_nearest_ancestor() -> None:
    pos = locate('[[rule]]\nname = "a"\n')
    assert pos.key(("rule", 0, "when", "title")) == (1, 1)
    assert pos.value(("rule", 0, "name", 3)) == (2, 8)


def _paths(value: object, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out: list[tuple[str | int, ...]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out += [(*path, k), *_paths(v, (*path, k))]
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += [(*path, i), *_paths(v, (*path, i))]
    return out


def test_every_parsed_key_and_element_is_located() -> None:
    docs = [DOC] + [p.read_text(encoding="utf-8") for p in EXAMPLES.glob("**/*.toml")]
    docs.append('a = [ # c\n  { b = "]", c = [1, [2, 3]] },\n]\n"x.y" . z = \'\'\'\n"\'\'\'\n')
    for doc in docs:
        pos = locate(doc)
        for path in _paths(tomllib.loads(doc)):
            assert path in pos.keys or path in pos.values, path
