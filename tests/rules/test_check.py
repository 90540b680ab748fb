"""`check` and `load`: every problem at once, each at its exact file:line:col."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rules.loader import check, load
from rules.model import RuleErrors

if TYPE_CHECKING:
    from .conftest import FakeDirectory, WriteRules


def lines(folder: Path, recipients: object = None) -> list[str]:
    """The issues as `name:line:col: message` with the folder stripped."""
    return [str(i).replace(f"{folder}/", "") for i in check(folder, recipients)]  # type: ignore[arg-type]


def test_valid_directory_has_no_issues(rules_dir: WriteRules) -> None:
    folder = rules_dir(a='[[rule]]\nname = "r"\nwhen.title.any = ["moms"]\nroute = ["finance"]\n')
    assert check(folder) == []
    assert len(load(folder).rules) == 1


def test_toml_syntax_error_has_its_position(rules_dir: WriteRules) -> None:
    folder = rules_dir(a='[[rule]]\nname = "r"\nroute = ["x"\nhold = "y"\n')
    [issue] = check(folder)
    assert (issue.file, issue.line, issue.col) == (str(folder / "a.toml"), 4, 1)
    assert issue.message.startswith("TOML syntax: ")


def test_every_problem_is_reported_with_exact_positions(rules_dir: WriteRules) -> None:
    folder = rules_dir(
        a="""
        [[rule]]
        name = "one"
        when.sender.idd = "1"
        when.title.anyy = ["moms"]
        route = ["x"]

        [[rule]]
        name = "two"
        when = { title.regex = '(?P<x>a', flags.mandatory = "yes" }
        route = ["${dept}"]
          priority = "high"
        colour = "red"

        [[rule]]
        name = "one"
        when.received.date.gt = 2026-01-01T10:00:00
        when.received.weekday = ["monday", "caturday"]
        route = ["x"]
        """,
        b="""
        [[rule]]
        name = "no action"
        when.title = "x"
        """,
    )
    assert lines(folder) == [
        "a.toml:3:13: unknown field 'sender.idd'; did you mean 'sender.id'?",
        "a.toml:4:12: unknown matcher or field 'anyy' under 'title'; use one of: equals, any, all, glob, regex, fuzzy, recipient",
        "a.toml:9:24: bad regex: missing ) at pattern position 7",
        "a.toml:9:53: expected true or false, got string",
        "a.toml:10:10: '${dept}' is not captured by any condition of this rule",
        "a.toml:11:14: 'priority' must be an integer, got string",
        "a.toml:12:1: unknown key 'colour' in rule",
        "a.toml:15:8: duplicate rule name 'one' (first at a.toml:1)",
        "a.toml:16:25: expected a date value, got datetime",
        "a.toml:17:36: unknown weekday 'caturday'; expected monday..sunday or mandag..søndag",
        "b.toml:1:1: rule has no action: give 'route', 'hold', or 'continue = true'",
    ]


def test_load_raises_with_all_issues(rules_dir: WriteRules) -> None:
    folder = rules_dir(a='[[rule]]\nname = 1\nroute = "x"\n[[rule]]\nname = "b"\nhold = ""\n')
    with pytest.raises(RuleErrors) as caught:
        load(folder)
    assert [(i.line, i.col) for i in caught.value.issues] == [(2, 8), (6, 8)]
    assert "rule needs a non-empty string 'name'" in str(caught.value)


def test_duplicate_names_across_files(rules_dir: WriteRules) -> None:
    folder = rules_dir(
        a='[[rule]]\nname = "Tax"\nwhen.title = "a"\nroute = ["x"]\n',
        b='# b\n[[rule]]\n  name   = "tax"\nwhen.title = "b"\nroute = ["y"]\n',
    )
    assert lines(folder) == ["b.toml:3:12: duplicate rule name 'tax' (first at a.toml:1)"]


def test_unreachable_after_unscoped_catch_all(rules_dir: WriteRules) -> None:
    folder = rules_dir(
        a="""
        [[rule]]
        name = "tag all"
        tag = ["seen"]
        continue = true

        [[rule]]
        name = "org catch-all"
        organisations = ["11111111"]
        route = ["frontdesk"]

        [[rule]]
        name = "other org"
        organisations = ["22222222"]
        when.title = "x"
        route = ["x"]

        [[rule]]
        name = "same org"
        organisations = ["11111111"]
        when.title = "x"
        route = ["x"]

        [[rule]]
        name = "everything"
        route = ["frontdesk"]
        """,
        b='[[rule]]\nname = "late"\nwhen.title = "x"\nroute = ["x"]\n',
    )
    assert lines(folder) == [
        "a.toml:17:1: rule 'same org' is unreachable: rule 'org catch-all' at a.toml:6 matches every message in its scope and does not continue",
        "b.toml:1:1: rule 'late' is unreachable: rule 'everything' at a.toml:23 matches every message in its scope and does not continue",
    ]


def test_capture_without_lookup_and_bad_route_entries(rules_dir: WriteRules) -> None:
    folder = rules_dir(
        a="""
        [[rule]]
        name = "r"
        when.title.regex = '(?P<dept>\\w+)'
        route = ["${dept}", "team-${dept}", ""]
        """
    )
    assert lines(folder) == [
        "a.toml:4:10: '${dept}' has no [lookup.dept] table to resolve it",
        "a.toml:4:21: a route entry is a recipient id or exactly '${capture}'",
        "a.toml:4:37: expected a non-empty string, got string",
    ]


def test_unknown_recipients_with_a_directory(
    rules_dir: WriteRules, directory: FakeDirectory
) -> None:
    directory.orgs = {"12345678", "87654321"}
    folder = rules_dir(
        a="""
        [lookup.dept]
        "økonomi" = "finance"
        it = ["it-support", "legal"]

        [[rule]]
        name = "scoped"
        organisations = ["12345678"]
        when.title = "x"
        route = ["finance", "nobody", "management"]

        [[rule]]
        name = "by dept"
        organisations = ["12345678"]
        when.title.regex = '(?P<dept>\\w+)'
        route = ["${dept}"]
        """,
    )
    directory.recipients.pop("legal")
    assert lines(folder, directory) == [
        "a.toml:3:7: unknown recipient or group 'it-support' for organisation 12345678",
        "a.toml:3:21: unknown recipient or group 'legal' for organisation 12345678",
        "a.toml:9:21: unknown recipient or group 'nobody' for organisation 12345678",
    ]
    assert lines(folder) == []  # without a directory nothing can be checked


def test_unscoped_rule_is_checked_in_every_organisation(
    rules_dir: WriteRules, directory: FakeDirectory
) -> None:
    directory.orgs = {"12345678", "87654321"}
    directory.group_map = {}
    folder = rules_dir(a='[[rule]]\nname = "r"\nroute = ["management"]\n')
    assert lines(folder, directory) == [
        "a.toml:3:10: unknown recipient or group 'management' for organisation 12345678, 87654321"
    ]


def test_wrong_matcher_for_field_type_and_bad_options(rules_dir: WriteRules) -> None:
    folder = rules_dir(
        a="""
        [[rule]]
        name = "r"
        route = ["x"]
        when.flags.mandatory.any = ["x"]
        when.sender.name.recipient = true
        when.title.fuzzy = { to = [], min_score = 90 }
        when.text.fuzzy = { to = "x", min_score = 120 }
        when.attention.recipient = { min_score = 90, cutoff = 3 }
        when.received.date.between = [2026-02-01, 2026-01-01]
        """,
        b='[[rule]]\nname = "s"\nroute = ["x"]\nwhen.sender = "x"\nwhen.any = []\n',
    )
    assert lines(folder) == [
        "a.toml:4:22: matcher 'any' does not apply to boolean field 'flags.mandatory'; use one of: equals",
        "a.toml:5:18: 'recipient' applies to attention, title and text, not 'sender.name'",
        "a.toml:6:27: expected a string or a non-empty array of them",
        "a.toml:7:43: 'min_score' must be a number from 0 to 100",
        "a.toml:8:46: unknown option 'cutoff'; expected one of: min_score, margin, capture",
        "a.toml:9:30: 'between' needs low <= high",
        "b.toml:4:6: unknown field 'sender'; 'sender' needs a sub-field",
        "b.toml:5:12: 'any' takes a non-empty array of condition tables",
    ]


def test_unknown_top_level_key_and_missing_directory(rules_dir: WriteRules, tmp_path: Path) -> None:
    folder = rules_dir(a='rules = []\n[[rule]]\nname = "r"\nroute = ["x"]\n')
    assert lines(folder) == ["a.toml:1:1: unknown top-level key 'rules'; expected [[rule]] or [lookup.NAME]"]
    [issue] = check(tmp_path / "missing")
    assert issue.message == "rules directory does not exist"


def test_duplicate_lookup_across_files(rules_dir: WriteRules) -> None:
    folder = rules_dir(a='[lookup.d]\nx = "a"\n', b='# shared\n[lookup.d]\ny = "b"\n')
    assert lines(folder) == ["b.toml:2:1: [lookup.d] is already defined in a.toml"]


def test_syntax_error_at_end_of_document(rules_dir: WriteRules) -> None:
    folder = rules_dir(a='[[rule]]\nname = "r"\nroute = ["x"')
    [issue] = check(folder)
    assert (issue.line, issue.col) == (3, 13)
    assert issue.message.startswith("TOML syntax: ") and "end of document" not in issue.message


def test_captures_under_not_cannot_route_and_empty_matcher_tables(rules_dir: WriteRules) -> None:
    folder = rules_dir(
        a="""
        [lookup.d]
        a = "x"

        [[rule]]
        name = "r"
        when.not.title.regex = '(?P<d>a)'
        when.sender.name = {}
        route = ["${d}"]
        """
    )
    assert lines(folder) == [
        "a.toml:7:20: 'sender.name' needs a value or a matcher",
        "a.toml:8:10: '${d}' is not captured by any condition of this rule",
    ]
