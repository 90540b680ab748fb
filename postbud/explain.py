"""Decisions and a message's history in words: the rules tried and why each did or did not match, the
model's view, the fallback, who received what by which channel, and the timeline.

`rules test` prints a fresh evaluation's explanation with `explanation_lines`; `trace show` prints the
stored (compact) explanation of each decision the same way, so an operator reads one format.
"""

from __future__ import annotations

import json
from typing import Any


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def condition_lines(trace: list[dict[str, Any]], indent: str) -> list[str]:
    """One line per condition: ✓/✗, the field, the matcher and what it looked at or found."""
    lines = []
    for item in trace:
        mark = "✓" if item.get("matched") else "✗"
        for group in ("any", "all", "not"):
            if group in item:
                lines.append(f"{indent}{mark} {group}:")
                lines += condition_lines(item[group], indent + "    ")
                break
        else:
            extra = {k: v for k, v in item.items() if k not in ("field", "matcher", "matched")}
            details = ", ".join(f"{k}={_value(v)}" for k, v in extra.items())
            lines.append(f"{indent}{mark} {item.get('field', '?')} {item.get('matcher', '?')}: {details}")
    return lines


def explanation_lines(ex: dict[str, Any], indent: str = "") -> list[str]:
    """The rules tried (a stored explanation keeps the matched ones in full and only the first failing
    condition of the others), then the model's view and the fallback when they were asked."""
    lines: list[str] = []
    tried = ex.get("tried")
    if tried is not None:
        skipped, version = ex.get("skipped_out_of_scope", 0), ex.get("rule_set") or ex.get("rules_version")
        lines.append(f"{indent}rules tried ({skipped} out of scope, rule set {version}):")
        hidden = ex.get("not_matched", 0) - sum(1 for t in tried if not t.get("matched"))
        if hidden > 0:
            lines.append(f"{indent}  … {hidden} earlier rules did not match")
        for entry in tried:
            mark = "✓" if entry.get("matched") else "✗"
            lines.append(f"{indent}  {mark} {entry.get('rule')}  ({entry.get('at')})")
            if entry.get("conditions"):
                lines += condition_lines(entry["conditions"], indent + "      ")
            elif entry.get("failed"):
                lines += condition_lines([entry["failed"]], indent + "      ")
            if "reason" in entry:
                lines.append(f"{indent}      reason: {entry['reason']}")
            if "route" in entry:
                lines.append(f"{indent}      route: {', '.join(entry['route'])}")
            if "captures" in entry:
                lines.append(f"{indent}      captures: {_value(entry['captures'])}")
    if "model" in ex:
        if ex["model"] is None:
            lines.append(f"{indent}model: {ex.get('model_reason') or 'none'}")
        else:
            shown = ", ".join(f"{s['label']} {s['probability']:.0%}" for s in ex.get("suggestions", [])[:3])
            threshold = ex.get("threshold")
            limit = f"threshold {threshold:.1%}" if threshold is not None else "no threshold (never routes alone)"
            lines.append(f"{indent}model {ex['model']}: {shown or 'no suggestion'}; {limit}")
            if ex.get("model_reason"):
                lines.append(f"{indent}  not routed by the model: {ex['model_reason']}")
    if ex.get("fallback") == "default_route":
        lines.append(f"{indent}fallback: the organisation's default route → {', '.join(ex.get('recipients', []))}")
    elif ex.get("fallback") == "hold":
        lines.append(f"{indent}fallback: held for manual placement (the organisation has no default route)")
    if "assigned_by" in ex:
        lines.append(f"{indent}placed by hand by {ex['assigned_by']}")
    return lines


def _decision_summary(d: dict[str, Any]) -> str:
    who = {"rule": f"rule {d.get('rule')!r}", "default": "the organisation's fallback", "model": "the model",
           "hand": "hand"}.get(d["decided_by"], d["decided_by"])
    target = f" to {', '.join(d['recipients'])}" if d["action"] == "route" and d["recipients"] else ""
    return f"{d['at'][:19]}  {d['action']}{target} by {who}"


def message_lines(found: dict[str, Any], *, full: bool = False) -> list[str]:
    """`trace show`: the message, who received what by which channel, the timeline, each decision's why.

    Without `full` a decision's rules that did not match are left out (the JSON has everything).
    """
    lines = [f"{found['title']}",
             f"  id        {found['id']}",
             f"  from      {found['sender'] or '?'} → {found['organisation']}/{found['mailbox']} "
             f"({found['provider']}), received {found['received_at'][:19]}",
             f"  status    {found['status']}" + (f" ({found['status_reason']})" if found.get("status_reason") else "")]
    if found["deliveries"]:
        lines.append("received by")
        for d in found["deliveries"]:
            when = f" at {d['delivered_at'][:19]}" if d.get("delivered_at") else ""
            attempts = f", {d['attempts']} attempts" if d.get("attempts", 0) > 1 else ""
            reply = f": {d['last_reply']}" if d.get("last_reply") and d["status"] != "delivered" else ""
            lines.append(f"  {d['recipient']:<20} by {d['channel']:<8} {d['status']}{when}{attempts}{reply}")
    else:
        lines.append("received by  nobody yet")
    lines.append("timeline")
    for event in found["events"]:
        change = f"{event['from_status'] or ''} → {event['to_status']}".strip() if event["to_status"] else ""
        line = f"  {event['at'][:19]}  {event['kind']:<14} {event['actor']:<10} {change}".rstrip()
        if event["reason"]:
            line += f"  ({event['reason']})"
        lines.append(line)
    for decision in found["decisions"]:
        lines.append(f"why: {_decision_summary(decision)}")
        ex = decision.get("explanation") or {}
        if not full and ex.get("tried"):
            ex = {**ex, "tried": [t for t in ex["tried"] if t.get("matched")]}
        lines += explanation_lines(ex, "  ")
    return lines
