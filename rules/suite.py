"""Rule unit tests: TOML files of message fixtures with the decision the rules must reach."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.domain import NormalizedMessage
from core.recipients import RecipientDirectory
from rules.facts import MessageFacts
from rules.loader import load, rule_files
from rules.model import Evaluation, RuleErrors
from core.tomlpos import locate

CASE_KEYS = ("name", "message", "organisation", "mailbox", "provider", "received_at", "expect")
EXPECT_KEYS = ("action", "recipients", "rule", "tags", "priority")


@dataclass(frozen=True)
class CaseResult:
    """One `[[case]]`: whether the rules reached the expected decision, and if not, how they differed."""

    name: str
    file: str
    line: int
    passed: bool
    failures: tuple[str, ...] = ()
    evaluation: Evaluation | None = None


@dataclass(frozen=True)
class SuiteResult:
    """All cases of a test directory; `errors` are problems that kept cases from running at all."""

    cases: tuple[CaseResult, ...]
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors and all(c.passed for c in self.cases)

    @property
    def failed(self) -> tuple[CaseResult, ...]:
        return tuple(c for c in self.cases if not c.passed)


@dataclass(frozen=True)
class MessageReader:
    """How a suite reads its message fixtures; the rules parse nothing, the application passes the
    connectors' file parser. An error of a `refused` type fails that one case, not the whole run."""

    parse: Callable[[bytes, str], NormalizedMessage]
    refused: tuple[type[Exception], ...] = ()


def run_test_suite(
    path: str | Path,
    rules_dir: str | Path,
    directory: RecipientDirectory | None = None,
    *,
    reader: MessageReader,
) -> SuiteResult:
    """Run every `[[case]]` of the `*.toml` files in folder `path` against the rules in `rules_dir`,
    reading each case's message file with `reader`."""
    try:
        ruleset = load(rules_dir, directory)
    except RuleErrors as e:
        return SuiteResult((), tuple(str(i) for i in e.issues))
    cases: list[CaseResult] = []
    errors: list[str] = []
    for file in rule_files(path):
        text = file.read_text(encoding="utf-8")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            errors.append(f"{file}: TOML syntax: {e}")
            continue
        positions = locate(text)
        if set(data) - {"case"} or not isinstance(data.get("case", []), list):
            errors.append(f"{file}:1:1: a test file holds only [[case]] tables")
            continue
        for index, case in enumerate(data.get("case", [])):
            line, col = positions.key(("case", index))
            problem = _validate(case)
            if problem:
                errors.append(f"{file}:{line}:{col}: {problem}")
                continue
            cases.append(_run_case(ruleset.evaluate, reader, file, line, case))
    if not cases and not errors:
        errors.append(f"{path}: no [[case]] found in *.toml files")
    return SuiteResult(tuple(cases), tuple(errors))


def _validate(case: Any) -> str | None:
    if not isinstance(case, dict):
        return "each case must be a table"
    expect = case.get("expect")
    unknown = sorted(set(case) - set(CASE_KEYS))
    unknown += sorted(set(expect) - set(EXPECT_KEYS)) if isinstance(expect, dict) else []
    if unknown:
        keys, expect = ", ".join(CASE_KEYS), ", ".join(EXPECT_KEYS)
        return f"unknown key(s) {', '.join(unknown)}; a case has {keys} and expect.{{{expect}}}"
    if not isinstance(case.get("message"), str):
        return "a case needs 'message', the path of a .xml or .eml fixture"
    if not isinstance(case.get("expect"), dict) or not case["expect"]:
        return "a case needs at least one expect.* value"
    if case["expect"].get("action") not in (None, "route", "hold"):
        return "expect.action is \"route\" or \"hold\""
    return None


def _run_case(
    evaluate: Callable[[MessageFacts], Evaluation],
    reader: MessageReader,
    path: Path,
    line: int,
    case: dict[str, Any],
) -> CaseResult:
    name = str(case.get("name") or f"case at line {line}")
    fixture = path.parent / case["message"]
    try:
        message = reader.parse(fixture.read_bytes(), fixture.name)
    except OSError as e:
        return CaseResult(name, str(path), line, False, (f"cannot read {fixture}: {e.strerror}",))
    except reader.refused as e:  # a fixture the parser refuses fails its own case, not the suite
        return CaseResult(name, str(path), line, False, (f"cannot parse {fixture.name}: {e}",))
    received = case.get("received_at") or message.sent_at or datetime.now(UTC)
    facts = MessageFacts(
        message=message,
        organisation=str(case.get("organisation") or message.recipient.id or ""),
        mailbox=str(case.get("mailbox", "default")),
        provider=str(case.get("provider", "file")),
        received_at=received,
    )
    ev = evaluate(facts)
    return CaseResult(name, str(path), line, not (f := _compare(case["expect"], ev)), f, ev)


def _compare(expect: dict[str, Any], ev: Evaluation) -> tuple[str, ...]:
    failures = []
    if "action" in expect and expect["action"] != ev.action:
        failures.append(f"action: expected {expect['action']}, got {ev.action} ({ev.reason or ''})")
    if "recipients" in expect and sorted(expect["recipients"]) != sorted(ev.recipients):
        want, got = sorted(expect["recipients"]), sorted(ev.recipients)
        failures.append(f"recipients: expected {want}, got {got}")
    if "rule" in expect and (expect["rule"] or None) != ev.rule:
        failures.append(f"rule: expected {expect['rule'] or 'none'!r}, got {ev.rule or 'none'!r}")
    if "tags" in expect and sorted(expect["tags"]) != sorted(ev.tags):
        failures.append(f"tags: expected {sorted(expect['tags'])}, got {sorted(ev.tags)}")
    if "priority" in expect and expect["priority"] != ev.priority:
        failures.append(f"priority: expected {expect['priority']}, got {ev.priority}")
    return tuple(failures)
