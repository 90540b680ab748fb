"""Condition trees (`all` / `any` / `not` over field tests): yes/no per message, with a trace of why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rules.context import EvalContext, Matcher, Trace
from rules.facts import FieldSpec


class Node(Protocol):
    """A condition: answers yes/no for a message and appends what it looked at to the trace."""

    @property
    def captures(self) -> frozenset[str]: ...

    def test(self, ctx: EvalContext, trace: Trace) -> bool: ...


@dataclass(frozen=True)
class FieldTest:
    """One matcher applied to one field."""

    spec: FieldSpec
    matcher: Matcher
    captures: frozenset[str] = frozenset()

    def test(self, ctx: EvalContext, trace: Trace) -> bool:
        ok, detail = self.matcher.match(self.spec, ctx)
        entry: dict[str, Any] = {"field": self.spec.name, "matcher": self.matcher.name, "matched": ok}
        entry.update(detail)
        trace.append(entry)
        return ok


def _restore(ctx: EvalContext, saved: dict[str, str] | None) -> None:
    if saved is not None:
        ctx.captures.clear()
        ctx.captures.update(saved)


@dataclass(frozen=True)
class AllOf:
    """True when every child is; stops at the first false one (which the trace then shows)."""

    children: tuple[Node, ...]
    captures: frozenset[str] = frozenset()

    def test(self, ctx: EvalContext, trace: Trace) -> bool:
        # A branch that fails half-way must not leave its captures behind for the action to use.
        saved = dict(ctx.captures) if self.captures else None
        for child in self.children:
            if not child.test(ctx, trace):
                _restore(ctx, saved)
                return False
        return True


@dataclass(frozen=True)
class AnyOf:
    """True when some child is; stops at the first true one."""

    children: tuple[Node, ...]
    captures: frozenset[str] = frozenset()

    def test(self, ctx: EvalContext, trace: Trace) -> bool:
        inner: Trace = []
        ok = any(_branch(child, ctx, inner) for child in self.children)
        trace.append({"any": inner, "matched": ok})
        return ok


def _branch(child: Node, ctx: EvalContext, trace: Trace) -> bool:
    inner: Trace = []
    ok = child.test(ctx, inner)
    trace.append(inner[0] if len(inner) == 1 else {"all": inner, "matched": ok})
    return ok


@dataclass(frozen=True)
class NotOf:
    """True when its child is false; the child's captures are discarded either way."""

    child: Node
    captures: frozenset[str] = frozenset()

    def test(self, ctx: EvalContext, trace: Trace) -> bool:
        saved = dict(ctx.captures)
        inner: Trace = []
        ok = not self.child.test(ctx, inner)
        _restore(ctx, saved)
        trace.append({"not": inner, "matched": ok})
        return ok


def all_of(children: Sequence[Node]) -> AllOf:
    """An `AllOf` that knows which captures its children may set."""
    return AllOf(tuple(children), frozenset().union(*(c.captures for c in children)))


def any_of(children: Sequence[Node]) -> AnyOf:
    """An `AnyOf` that knows which captures its children may set."""
    return AnyOf(tuple(children), frozenset().union(*(c.captures for c in children)))
