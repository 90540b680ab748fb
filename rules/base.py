"""The extension point of the rules package: the directory of approved recipients it routes to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class RecipientDirectory(Protocol):
    """The approved recipients and groups of each organisation (CVR), as the delivery stage knows them.

    An implementation SHALL answer for any organisation string, returning empty collections for one it
    does not know. Ids are the stable strings rules write in `route = [...]`. An implementation SHALL
    NOT list a recipient that is not approved for delivery. Results MAY be cached by the caller for the
    lifetime of one loaded rule set.
    """

    def ids(self, organisation: str) -> set[str]:
        """The ids of the organisation's approved individual recipients."""
        ...

    def groups(self, organisation: str) -> Mapping[str, Sequence[str]]:
        """Each group id of the organisation with the recipient ids it expands to."""
        ...

    def names(self, organisation: str) -> Mapping[str, Sequence[str]]:
        """Each recipient id with its display name first, then its aliases (for fuzzy matching)."""
        ...


@runtime_checkable
class ListsOrganisations(Protocol):
    """Optional addition to `RecipientDirectory`: which organisations it knows.

    When the directory offers it, `check` verifies that an unscoped rule's recipients exist in every
    listed organisation; without it, only rules scoped with `organisations = [...]` are verified.
    """

    def organisations(self) -> set[str]:
        """The CVRs the directory has recipients for."""
        ...
