"""Checks a parsed MeMo tree against `connectors.memo.schema` and reports the first violation."""

from __future__ import annotations

import functools

from lxml import etree

from connectors.memo.errors import MemoError
from connectors.memo.schema import MEMO, PREFIXES, XSI, Choice, Complex, El, message_element


@functools.lru_cache(maxsize=1024)  # every element's path is built with it: a third of validating a letter
def display(tag: str) -> str:
    """An element name as a reader of the XSD would write it: `label`, `grd:ProductionUnit`."""
    qname = etree.QName(tag)
    if qname.namespace == MEMO:
        return str(qname.localname)
    prefix = PREFIXES.get(qname.namespace or "")
    if prefix:
        return f"{prefix}:{qname.localname}"
    return tag


def validate(root: etree._Element, version: str) -> None:
    """Raise `MemoError` naming the first place where `root` breaks the MeMo `version` schema."""
    definition = message_element(version)
    if root.tag != definition.qname:
        raise MemoError(f"root element is {display(str(root.tag))!r}, expected memo:Message")
    _check(root, definition, "Message")


def _fail(element: etree._Element, message: str) -> MemoError:
    line = element.sourceline
    return MemoError(f"{message} (line {line})" if line else message)


def _join(path: str, tag: str) -> str:
    # Paths start below the root, as the MeMo documentation names elements (MessageHeader/label).
    name = display(tag)
    return name if path == "Message" else f"{path}/{name}"


def _children(element: etree._Element, path: str) -> list[etree._Element]:
    children: list[etree._Element] = []
    for child in element:
        if isinstance(child, etree._Entity):
            raise _fail(element, f"{path}: entity references are not allowed")
        if isinstance(child.tag, str):
            children.append(child)
    return children


def _text(element: etree._Element) -> str:
    # A leaf's value is its text plus the tails of any comments or processing instructions in it.
    return (element.text or "") + "".join(child.tail or "" for child in element)


def _check(element: etree._Element, decl: El, path: str) -> None:
    _check_attributes(element, decl, path)
    children = _children(element, path)
    if not isinstance(decl.type, Complex):
        if children:
            raise _fail(element, f"{path}: unexpected element {display(str(children[0].tag))!r} in a text-only element")
        reason = decl.type.check(_text(element))
        if reason:
            raise _fail(element, f"{path} {reason}")
        return
    if _text(element).strip():
        raise _fail(element, f"{path}: unexpected text content")
    _check_sequence(element, decl.type, children, path)


def _check_attributes(element: etree._Element, decl: El, path: str) -> None:
    declared = {a.name: a for a in decl.type.attributes} if isinstance(decl.type, Complex) else {}
    for raw_key, raw_value in element.attrib.items():
        key, value = str(raw_key), str(raw_value)
        qname = etree.QName(key)
        if qname.namespace == XSI:
            continue
        attr = declared.get(key)
        if attr is None:
            raise _fail(element, f"{path}: attribute {key!r} is not allowed")
        reason = attr.type.check(value)
        if reason:
            raise _fail(element, f"{path}/@{key} {reason}")
    for attr in declared.values():
        if attr.required and attr.name not in element.attrib:
            raise _fail(element, f"{path}: required attribute {attr.name!r} missing")


def _check_sequence(element: etree._Element, ctype: Complex, children: list[etree._Element], path: str) -> None:
    i = 0
    for position, particle in enumerate(ctype.particles):
        if isinstance(particle, Choice):
            option = next((o for o in particle.options if i < len(children) and children[i].tag == o.qname), None)
            if option is not None:
                _check(children[i], option, _join(path, option.qname))
                i += 1
            continue
        count = 0
        room = particle.max if particle.max is not None else len(children)
        while i < len(children) and children[i].tag == particle.qname and count < room:
            _check(children[i], particle, _join(path, particle.qname))
            count += 1
            i += 1
        if count < particle.min:
            _raise_missing(element, ctype, children, i, position, path)
    if i < len(children):
        _raise_misplaced(ctype, children, i, len(ctype.particles), path)


def _qnames(particle: El | Choice) -> tuple[str, ...]:
    return tuple(o.qname for o in particle.options) if isinstance(particle, Choice) else (particle.qname,)


def _raise_missing(
    element: etree._Element, ctype: Complex, children: list[etree._Element], i: int, position: int, path: str
) -> None:
    """A required particle found no match at child `i`: blame the child if it is the misfit."""
    particle = ctype.particles[position]
    assert isinstance(particle, El)
    later = {q for p in ctype.particles[position:] for q in _qnames(p)}
    if i < len(children) and children[i].tag not in later:
        _raise_misplaced(ctype, children, i, position, path)
    name = display(particle.qname)
    if any(c.tag == particle.qname for c in children[i:]):
        raise _fail(element, f"{path}: element {name!r} is out of order")
    raise _fail(element, f"{path}: required element {name!r} missing")


def _raise_misplaced(ctype: Complex, children: list[etree._Element], i: int, position: int, path: str) -> None:
    """Child `i` matches no particle from `position` on: it is repeated, out of order or unknown."""
    child = children[i]
    name = display(str(child.tag))
    for particle in ctype.particles[:position]:
        if child.tag not in _qnames(particle):
            continue
        if i > 0 and children[i - 1].tag == child.tag:
            most = 1 if isinstance(particle, Choice) else particle.max
            raise _fail(child, f"{path}: element {name!r} occurs more than {most} time(s)")
        raise _fail(child, f"{path}: element {name!r} is out of order")
    raise _fail(child, f"{path}: unexpected element {name!r}")
