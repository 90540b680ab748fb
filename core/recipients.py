"""Who mail may go to: the recipient-directory protocols the rules, the router and delivery share."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class RecipientDirectory(Protocol):
    """The approved recipients and groups of each organisation (CVR), as the delivery stage knows them.

    An implementation SHALL answer for any organisation string, returning empty collections for one it
    does not know. Ids are the stable strings rules write in `route = [...]`. An implementation SHALL
    NOT list a recipient that is not approved for delivery. Results MAY be cached by the caller for the
    lifetime of one loaded rule set.
    """

    def ids(self, organisation: str, /) -> set[str]:
        """Every recipient and group id of the organisation (what a routing target may name)."""
        ...

    def groups(self, organisation: str, /) -> Mapping[str, Sequence[str]]:
        """Each group id of the organisation with the recipient ids it expands to."""
        ...

    def names(self, organisation: str, /) -> Mapping[str, Sequence[str]]:
        """Each recipient id with its display name first, then its aliases (for fuzzy matching)."""
        ...

    def organisations(self) -> Collection[str]:
        """The CVRs the directory has recipients for (an unscoped rule is checked against each)."""
        ...


@runtime_checkable
class RecipientResolver(RecipientDirectory, Protocol):
    """A directory that also turns a routing target into outbox rows: members and a channel each.

    `members` SHALL expand a group to its recipients (a recipient to itself), in the group's order,
    and SHALL raise `KeyError` for an id the organisation does not list. `channel` SHALL return the
    recipient's own channel when it is among `enabled`, else the organisation's default channel.
    """

    def members(self, organisation: str, target: str, /) -> tuple[str, ...]:
        """The recipient ids `target` (a recipient or a group id) stands for."""
        ...

    def channel(self, organisation: str, recipient: str, /, *, enabled: Collection[str]) -> str:
        """The channel a delivery to `recipient` goes by."""
        ...
