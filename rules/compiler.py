"""Compiles one rule file's parsed TOML into `Rule` objects, collecting every problem and its place."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from rules.conditions import AllOf, FieldTest, Node, NotOf, all_of, any_of
from rules.facts import FIELD_PREFIXES, FIELDS, FieldSpec
from rules.matcher_args import compile_matcher, type_name
from rules.model import Rule, RuleIssue, Target
from core.tomlpos import Path, Pos, Positions

RULE_KEYS = (
    "name", "description", "when", "route", "hold", "tag", "priority", "continue",
    "organisations", "mailboxes", "providers",
)
_CAPTURE_REF = re.compile(r"^\$\{(\w+)\}$")


@dataclass(frozen=True)
class Lookup:
    """A `[lookup.NAME]` table: case-folded key -> recipient/group ids, with where each id is written."""

    name: str
    file: str
    entries: dict[str, tuple[str, ...]]
    id_positions: tuple[tuple[str, Pos], ...]


@dataclass
class CompiledRule:
    """A rule with the source positions later checks (duplicates, reachability, directory) need."""

    rule: Rule
    header_pos: Pos
    unconditional: bool
    target_positions: list[tuple[str, Pos]] = field(default_factory=list)
    lookups: list[Lookup] = field(default_factory=list)


class FileCompiler:
    """Compiles the `[[rule]]` and `[lookup.*]` tables of one parsed file; see `issues` afterwards."""

    def __init__(self, file: str, display: str, positions: Positions) -> None:
        self.file = file  # the path issues are reported under
        self.display = display  # the short name explanations show
        self.pos = positions
        self.issues: list[RuleIssue] = []
        # Every named rule, valid or not, so duplicate names are reported alongside other errors.
        self.names: list[tuple[str, int, Pos]] = []
        self._captures: set[str] = set()
        self._recipient_captures: set[str] = set()

    def error(self, path: Path, message: str, *, value: bool = False) -> None:
        line, col = self.pos.value(path) if value else self.pos.key(path)
        self.issues.append(RuleIssue(self.file, line, col, message))

    # -- top level -------------------------------------------------------------------------------

    def lookups(self, data: dict[str, Any]) -> list[Lookup]:
        """The file's lookup tables (unknown top-level keys are reported here too)."""
        for key in data:
            if key not in ("rule", "lookup"):
                self.error((key,), f"unknown top-level key '{key}'; expected [[rule]] or [lookup.NAME]")
        tables = data.get("lookup", {})
        if not isinstance(tables, dict):
            self.error(("lookup",), "'lookup' must be a table of [lookup.NAME] tables", value=True)
            return []
        out = []
        for name, table in tables.items():
            path: Path = ("lookup", name)
            if not isinstance(table, dict):
                self.error(path, f"[lookup.{name}] must be a table of key = id(s)", value=True)
                continue
            entries: dict[str, tuple[str, ...]] = {}
            positions: list[tuple[str, Pos]] = []
            for key, ids in table.items():
                got = self.strings((*path, key), ids)
                if got is not None:
                    entries[key.strip().casefold()] = tuple(got)
                    positions += [(v, self.pos.value((*path, key, i))) for i, v in enumerate(got)]
                    if isinstance(ids, str):
                        positions[-1] = (ids, self.pos.value((*path, key)))
            out.append(Lookup(name, self.file, entries, tuple(positions)))
        return out

    def rules(self, data: dict[str, Any], lookups: dict[str, Lookup]) -> list[CompiledRule]:
        """Compile every `[[rule]]` of the file, in order."""
        raw = data.get("rule", [])
        if not isinstance(raw, list):
            self.error(("rule",), "'rule' must be an array of tables: write [[rule]]", value=True)
            return []
        out = []
        for index, table in enumerate(raw):
            if not isinstance(table, dict):
                self.error(("rule", index), "each rule must be a table", value=True)
                continue
            compiled = self.rule(("rule", index), table, lookups)
            if compiled is not None:
                out.append(compiled)
        return out

    # -- one rule --------------------------------------------------------------------------------

    def rule(self, path: Path, t: dict[str, Any], lookups: dict[str, Lookup]) -> CompiledRule | None:
        before = len(self.issues)
        for key in t:
            if key not in RULE_KEYS:
                self.error((*path, key), f"unknown key '{key}' in rule{_suggest(key, RULE_KEYS)}")
        name = t.get("name")
        if not isinstance(name, str) or not name.strip():
            where = (*path, "name") if "name" in t else path
            self.error(where, "rule needs a non-empty string 'name'", value="name" in t)
            name = ""
        else:
            self.names.append((name, self.pos.key(path)[0], self.pos.value((*path, "name"))))
        self._captures, self._recipient_captures = set(), set()
        when = t.get("when", {})
        if isinstance(when, dict):
            node: Node = self.condition((*path, "when"), when)
        else:
            self.error((*path, "when"), f"'when' must be a table, got {type_name(when)}", value=True)
            node = AllOf(())
        compiled = CompiledRule(
            rule=Rule(name=name, file=self.display, line=self.pos.key(path)[0], when=node),
            header_pos=self.pos.key(path),
            unconditional=isinstance(node, AllOf) and not node.children,
        )
        route = self.route(path, t, lookups, compiled)
        hold = t.get("hold")
        if hold is not None and (not isinstance(hold, str) or not hold.strip()):
            self.error((*path, "hold"), "'hold' must be a non-empty string: the reason", value=True)
            hold = None
        if hold is not None and "route" in t:
            self.error((*path, "hold"), "a rule either routes or holds, not both")
        tags = self.strings((*path, "tag"), t["tag"]) if "tag" in t else []
        priority = t.get("priority")
        if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
            got = type_name(priority)
            self.error((*path, "priority"), f"'priority' must be an integer, got {got}", value=True)
            priority = None
        cont = t.get("continue", False)
        if not isinstance(cont, bool):
            got = type_name(cont)
            self.error((*path, "continue"), f"'continue' must be true or false, got {got}", value=True)
            cont = False
        if not cont and "route" not in t and "hold" not in t:
            self.error(path, "rule has no action: give 'route', 'hold', or 'continue = true'")
        scopes = {k: self.scope(path, t, k) for k in ("organisations", "mailboxes", "providers")}
        if len(self.issues) > before:
            return None
        compiled.rule = Rule(
            name=name, file=self.display, line=compiled.header_pos[0], when=node, route=route,
            hold=hold, tags=tuple(tags or ()), priority=priority, continue_=cont, **scopes,
        )
        return compiled

    def route(
        self, path: Path, t: dict[str, Any], lookups: dict[str, Lookup], out: CompiledRule
    ) -> tuple[Target, ...]:
        if "route" not in t:
            return ()
        raw = t["route"]
        if isinstance(raw, str):
            items: list[tuple[Path, Any]] = [((*path, "route"), raw)]
        elif isinstance(raw, list) and raw:
            items = [((*path, "route", i), v) for i, v in enumerate(raw)]
        else:
            msg = "'route' needs a recipient or a non-empty array of them"
            self.error((*path, "route"), msg, value=True)
            return ()
        targets = []
        for at, entry in items:
            if not isinstance(entry, str) or not entry.strip():
                self.error(at, f"expected a non-empty string, got {type_name(entry)}", value=True)
                continue
            ref = _CAPTURE_REF.match(entry.strip())
            if ref is None:
                if "${" in entry:
                    self.error(at, "a route entry is a recipient id or exactly '${capture}'", value=True)
                targets.append(Target(id=entry.strip()))
                out.target_positions.append((entry.strip(), self.pos.value(at)))
                continue
            name = ref.group(1)
            if name not in self._captures:
                msg = f"'${{{name}}}' is not captured by any condition of this rule"
                self.error(at, msg, value=True)
            elif name in lookups:
                targets.append(Target(capture=name, lookup=lookups[name].entries))
                out.lookups.append(lookups[name])
            elif name in self._recipient_captures:
                targets.append(Target(capture=name))
            else:
                self.error(at, f"'${{{name}}}' has no [lookup.{name}] table to resolve it", value=True)
        return tuple(targets)

    def scope(self, path: Path, t: dict[str, Any], key: str) -> frozenset[str] | None:
        if key not in t:
            return None
        got = self.strings((*path, key), t[key])
        if got is not None and not got:
            msg = f"'{key}' must not be empty (leave it out to match all)"
            self.error((*path, key), msg, value=True)
        # CVRs compare exactly; mailbox and provider names as the evaluation folds them.
        fold = key != "organisations"
        return frozenset(v.strip().casefold() if fold else v.strip() for v in got or ())

    def strings(self, path: Path, value: Any) -> list[str] | None:
        """A string or array of non-empty strings, reported (and None) when it is anything else."""
        if isinstance(value, str):
            value = [value]
        elif not isinstance(value, list):
            msg = f"expected a string or an array of strings, got {type_name(value)}"
            self.error(path, msg, value=True)
            return None
        ok = True
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.error((*path, i), f"expected a non-empty string, got {type_name(item)}", value=True)
                ok = False
        return value if ok else None

    # -- conditions ------------------------------------------------------------------------------

    def condition(self, path: Path, table: dict[str, Any]) -> Node:
        """A condition table: field tests and all/any/not, all of which must hold."""
        children: list[Node] = []
        for key, value in table.items():
            at: Path = (*path, key)
            if key in ("all", "any"):
                items = value if isinstance(value, list) else None
                if not items or not all(isinstance(i, dict) for i in items):
                    self.error(at, f"'{key}' takes a non-empty array of condition tables", value=True)
                    continue
                subs = [self.condition((*at, i), item) for i, item in enumerate(items)]
                children.append(all_of(subs) if key == "all" else any_of(subs))
            elif key == "not":
                if not isinstance(value, dict) or not value:
                    self.error(at, "'not' takes one condition table", value=True)
                    continue
                # A negated condition's captures are discarded, so a route cannot use them.
                kept = set(self._captures), set(self._recipient_captures)
                sub = self.condition(at, value)
                self._captures, self._recipient_captures = kept
                children.append(NotOf(sub, frozenset()))
            else:
                children += self.field(key, value, at)
        return all_of(children)

    def field(self, name: str, value: Any, path: Path) -> list[Node]:
        spec = FIELDS.get(name)
        if spec is None and name in FIELD_PREFIXES and isinstance(value, dict):
            return [n for k, v in value.items() for n in self.field(f"{name}.{k}", v, (*path, k))]
        if spec is None:
            known = [*FIELDS, "all", "any", "not"]
            hint = f"; '{name}' needs a sub-field" if name in FIELD_PREFIXES else _suggest(name, known)
            self.error(path, f"unknown field '{name}'{hint}")
            return []
        if not isinstance(value, dict):
            return self.test(spec, "equals", value, path, at_value=True)
        if not value:
            self.error(path, f"'{name}' needs a value or a matcher", value=True)
            return []
        nodes: list[Node] = []
        for key, arg in value.items():
            sub = f"{name}.{key}"
            if sub in FIELDS or sub in FIELD_PREFIXES:
                nodes += self.field(sub, arg, (*path, key))
            else:
                nodes += self.test(spec, key, arg, (*path, key))
        return nodes

    def test(
        self, spec: FieldSpec, matcher: str, arg: Any, path: Path, *, at_value: bool = False
    ) -> list[Node]:
        if at_value and isinstance(arg, list) and not arg:
            self.error(path, "expected a value or a non-empty array of values", value=True)
            return []
        result = compile_matcher(spec, matcher, arg)
        for sub, message, on_value in result.errors:
            self.error((*path, *sub), message, value=on_value or at_value)
        if result.matcher is None:
            return []
        self._captures |= result.captures
        if matcher == "recipient":
            self._recipient_captures |= result.captures
        return [FieldTest(spec, result.matcher, frozenset(result.captures))]


def _suggest(word: str, known: Any) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""

