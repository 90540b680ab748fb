"""A validated MeMo element with its child elements indexed by tag, so values are read without searching."""

from __future__ import annotations

from lxml import etree


class Node:
    """One element that passed validation: the lxml element, its text as lxml gives it (up to its first
    comment), its child elements by qualified tag in document order (empty for a leaf), and for a
    base64 leaf without comments the bytes its text decodes to (else None)."""

    __slots__ = ("element", "text", "kids", "data")

    def __init__(self, element: etree._Element, text: str | None, kids: dict[str, list[Node]],
                 data: bytes | None = None) -> None:
        self.element = element
        self.text = text
        self.kids = kids
        self.data = data

    def first(self, tag: str) -> Node | None:
        """The first child element `tag`, as `element.find(tag)` finds it."""
        found = self.kids.get(tag)
        return found[0] if found else None

    def all(self, tag: str) -> list[Node]:
        """Every child element `tag`, as `element.findall(tag)` lists them."""
        return self.kids.get(tag, [])
