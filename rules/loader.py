"""Loads and checks a directory of rule files: every problem at once, each with file:line:col."""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.recipients import RecipientDirectory
from rules.compiler import CompiledRule, FileCompiler, Lookup
from rules.engine import DEFAULT_BUDGET, DEFAULT_REGEX_TIMEOUT, RuleSet
from rules.model import Rule, RuleErrors, RuleIssue
from core.tomlpos import Pos, locate

_TOML_POS = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")


@dataclass
class _Source:
    path: Path
    compiler: FileCompiler
    data: dict[str, Any]


def rule_files(path: str | Path) -> list[Path]:
    """The `*.toml` files of a folder in name order (the order rules are evaluated in)."""
    return sorted(p for p in Path(path).glob("*.toml") if p.is_file())


def _parse(path: Path, raw: bytes, issues: list[RuleIssue]) -> _Source | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        issues.append(RuleIssue(str(path), 1, 1, f"not UTF-8 text: {e.reason} at byte {e.start}"))
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _TOML_POS.search(msg)
        if m and m.group(1):
            line, col = int(m.group(1)), int(m.group(2))
        else:  # "(at end of document)"
            line, col = text.count("\n") + 1, len(text) - text.rfind("\n")
        issues.append(RuleIssue(str(path), line, col, f"TOML syntax: {_TOML_POS.sub('', msg)}"))
        return None
    return _Source(path, FileCompiler(str(path), path.name, locate(text)), data)


def check(
    path: str | Path,
    directory: RecipientDirectory | None = None,
    *,
    regex_timeout: float = DEFAULT_REGEX_TIMEOUT,
    budget: float = DEFAULT_BUDGET,
) -> list[RuleIssue]:
    """Every problem of the rule folder `path`, sorted by file and position (empty means valid).

    With a recipient `directory`, every routed id must be an approved recipient or group.
    """
    return _build(path, directory, regex_timeout, budget)[1]


def load(
    path: str | Path,
    directory: RecipientDirectory | None = None,
    *,
    regex_timeout: float = DEFAULT_REGEX_TIMEOUT,
    budget: float = DEFAULT_BUDGET,
) -> RuleSet:
    """The rule folder's rules ready to evaluate; raises `RuleErrors` listing every problem.

    `regex_timeout` bounds one regex search and `budget` all regex time of one evaluation (seconds).
    """
    ruleset, issues = _build(path, directory, regex_timeout, budget)
    if issues or ruleset is None:
        raise RuleErrors(issues)
    return ruleset


def _build(
    path: str | Path,
    recipients: RecipientDirectory | None,
    regex_timeout: float,
    budget: float,
) -> tuple[RuleSet | None, list[RuleIssue]]:
    root = Path(path)
    if not root.is_dir():
        return None, [RuleIssue(str(root), 1, 1, "rules directory does not exist")]
    issues: list[RuleIssue] = []
    digest = hashlib.sha256()
    sources = []
    for file in rule_files(root):
        try:
            raw = file.read_bytes()  # read once: the version must describe what was parsed
        except OSError as e:
            issues.append(RuleIssue(str(file), 1, 1, f"cannot read: {e.strerror}"))
            continue
        digest.update(file.name.encode() + b"\0" + raw + b"\0")
        source = _parse(file, raw, issues)
        if source is not None:
            sources.append(source)
    lookups: dict[str, Lookup] = {}
    for src in sources:
        for lookup in src.compiler.lookups(src.data):
            if lookup.name in lookups:
                first = lookups[lookup.name]
                msg = f"[lookup.{lookup.name}] is already defined in {first.file}"
                src.compiler.error(("lookup", lookup.name), msg)
            else:
                lookups[lookup.name] = lookup
    compiled: list[CompiledRule] = []
    for src in sources:
        compiled += src.compiler.rules(src.data, lookups)
    for src in sources:
        issues += src.compiler.issues
    paths = {src.path.name: str(src.path) for src in sources}
    issues += _duplicates(sources)
    issues += _unreachable(compiled, paths)
    if recipients is not None:
        issues += _directory_checks(compiled, recipients, paths)
    issues = sorted(set(issues))
    ruleset = RuleSet(
        rules=tuple(c.rule for c in compiled),
        source=str(root),
        version=digest.hexdigest()[:16],
        directory=recipients,
        regex_timeout=regex_timeout,
        budget=budget,
    )
    return (None if issues else ruleset), issues


def _issue(paths: dict[str, str], rule: Rule, at: Pos, message: str) -> RuleIssue:
    return RuleIssue(paths[rule.file], at[0], at[1], message)


def _covers(first: Rule, later: Rule) -> bool:
    """Whether every message in `later`'s scope is also in `first`'s."""
    for a, b in (
        (first.organisations, later.organisations),
        (first.mailboxes, later.mailboxes),
        (first.providers, later.providers),
    ):
        if a is not None and (b is None or not b <= a):
            return False
    return True


def _duplicates(sources: list[_Source]) -> list[RuleIssue]:
    """Rule names must be unique (case-insensitively) across the whole directory."""
    issues = []
    first: dict[str, str] = {}
    for src in sources:
        for name, line, (at_line, at_col) in src.compiler.names:
            key = name.strip().casefold()
            if key in first:
                msg = f"duplicate rule name '{name}' (first at {first[key]})"
                issues.append(RuleIssue(str(src.path), at_line, at_col, msg))
            else:
                first[key] = f"{src.path.name}:{line}"
    return issues


def _unreachable(compiled: list[CompiledRule], paths: dict[str, str]) -> list[RuleIssue]:
    """Rules shadowed by an earlier catch-all (no conditions) that does not continue."""
    issues = []
    catch_alls: list[Rule] = []
    for c in compiled:
        rule = c.rule
        shadow = next((r for r in catch_alls if _covers(r, rule)), None)
        if shadow is not None:
            msg = (
                f"rule '{rule.name}' is unreachable: rule '{shadow.name}' at {shadow.at} "
                "matches every message in its scope and does not continue"
            )
            issues.append(_issue(paths, rule, c.header_pos, msg))
        if c.unconditional and not rule.continue_:
            catch_alls.append(rule)
    return issues


def _directory_checks(
    compiled: list[CompiledRule], recipients: RecipientDirectory, paths: dict[str, str]
) -> list[RuleIssue]:
    """Each route id and each id of a lookup a rule uses must exist in every organisation it serves."""
    everyone = recipients.organisations()
    known: dict[str, set[str]] = {}

    def ids(org: str) -> set[str]:
        if org not in known:
            known[org] = set(recipients.ids(org)) | set(recipients.groups(org))
        return known[org]

    issues = []
    for c in compiled:
        orgs = c.rule.organisations if c.rule.organisations is not None else everyone
        if not orgs:
            continue
        checks = [(paths[c.rule.file], rid, at) for rid, at in c.target_positions]
        checks += [(lk.file, rid, at) for lk in c.lookups for rid, at in lk.id_positions]
        for file, rid, (line, col) in checks:
            missing = sorted(org for org in orgs if rid not in ids(org))
            if missing:
                where = ", ".join(missing)
                msg = f"unknown recipient or group '{rid}' for organisation {where}"
                issues.append(RuleIssue(file, line, col, msg))
    return issues
