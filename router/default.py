"""The organisation's fallback: its configured default route, or the manual queue."""

from __future__ import annotations

from core.config import Config
from router.decision import Action, Decision, Facts


class DefaultRoute:
    def __init__(self, config: Config) -> None:
        self._routes = {org.cvr: org.default_route for org in config.organisations}

    def decide(self, facts: Facts) -> Decision:
        route = self._routes.get(facts.organisation, ())
        if route:
            return Decision(
                Action.ROUTE,
                decided_by="default",
                recipients=tuple(route),
                reason="organisation default route",
                explanation={"fallback": "default_route", "recipients": list(route)},
            )
        return Decision(
            Action.HOLD,
            decided_by="default",
            reason="no rule matched and the organisation has no default route",
            explanation={"fallback": "hold"},
        )
