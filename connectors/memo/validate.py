"""Checks a parsed MeMo tree against `connectors.memo.schema` and reports the first violation."""

from __future__ import annotations

from lxml import etree

from connectors.memo.errors import MemoError
from connectors.memo.schema import BASE64, MEMO, PREFIXES, XSI, Choice, Complex, El, Simple, message_element, read_base64
from connectors.memo.tree import Node


def display(tag: str) -> str:
    """An element name as a reader of the XSD would write it: `label`, `grd:ProductionUnit`."""
    qname = etree.QName(tag)
    if qname.namespace == MEMO:
        return str(qname.localname)
    prefix = PREFIXES.get(qname.namespace or "")
    if prefix:
        return f"{prefix}:{qname.localname}"
    return tag


def validate(root: etree._Element, version: str) -> Node:
    """Raise `MemoError` naming the first place where `root` breaks the MeMo `version` schema; return
    the validated tree, each element's children indexed by tag for the reader."""
    definition = message_element(version)
    if root.tag != definition.qname:
        raise MemoError(f"root element is {display(str(root.tag))!r}, expected memo:Message")
    return _check(root, definition)


def _fail(element: etree._Element, message: str) -> MemoError:
    line = element.sourceline
    return MemoError(f"{message} (line {line})" if line else message)


def _path(element: etree._Element) -> str:
    """Where `element` is, as the MeMo documentation names elements: below the root (MessageHeader/label),
    the root itself being "Message". Built only for an error: every element checked matched its
    particle by tag, so its ancestors' tags are the path."""
    below_root = [element, *element.iterancestors()][:-1]
    return "/".join(display(str(e.tag)) for e in reversed(below_root)) or "Message"


def _text(element: etree._Element) -> str:
    # A leaf's value is its text plus the tails of any comments or processing instructions in it.
    return (element.text or "") + "".join(child.tail or "" for child in element)


_NO_KIDS: dict[str, list[Node]] = {}  # a leaf's (never written to)


def _check(element: etree._Element, decl: El) -> Node:
    ctype = decl.type
    if element.items() or (isinstance(ctype, Complex) and ctype.attributes):
        _check_attributes(element, ctype)
    text = element.text
    if not isinstance(ctype, Complex) and not len(element):  # a leaf without comments: most elements
        if ctype is BASE64:  # an attachment: decoded once, here, and the reader takes the bytes
            data = read_base64(text or "")
            if data is not None:
                return Node(element, text, _NO_KIDS, data)
        reason = ctype.check(text or "")
        if reason:
            raise _fail(element, f"{_path(element)} {reason}")
        return Node(element, text, _NO_KIDS)
    # One pass over the children: the elements (and their tags), and whether any text sits between them.
    children: list[etree._Element] = []
    tags: list[str] = []
    loose = bool(text and not text.isspace())
    for child in element:
        tag = child.tag
        if isinstance(tag, str):
            children.append(child)
            tags.append(tag)
        elif isinstance(child, etree._Entity):
            raise _fail(element, f"{_path(element)}: entity references are not allowed")
        if not loose:
            tail = child.tail
            loose = bool(tail and not tail.isspace())
    if not isinstance(ctype, Complex):  # a leaf with comments or processing instructions in it
        if children:
            raise _fail(element, f"{_path(element)}: unexpected element {display(tags[0])!r} in a text-only element")
        reason = ctype.check(_text(element))
        if reason:
            raise _fail(element, f"{_path(element)} {reason}")
        return Node(element, text, _NO_KIDS)
    if loose:
        raise _fail(element, f"{_path(element)}: unexpected text content")
    return Node(element, text, _check_sequence(element, ctype, children, tags))


def _check_attributes(element: etree._Element, ctype: Simple | Complex) -> None:
    declared = ctype.declared if isinstance(ctype, Complex) else {}
    for raw_key, raw_value in element.items():
        key, value = str(raw_key), str(raw_value)
        qname = etree.QName(key)
        if qname.namespace == XSI:
            continue
        attr = declared.get(key)
        if attr is None:
            raise _fail(element, f"{_path(element)}: attribute {key!r} is not allowed")
        reason = attr.type.check(value)
        if reason:
            raise _fail(element, f"{_path(element)}/@{key} {reason}")
    for attr in declared.values():
        if attr.required and attr.name not in element.attrib:
            raise _fail(element, f"{_path(element)}: required attribute {attr.name!r} missing")


def _check_sequence(
    element: etree._Element, ctype: Complex, children: list[etree._Element], tags: list[str]
) -> dict[str, list[Node]]:
    particles = _in_order(ctype, tags)
    if particles is not None:  # the children fit the sequence: check each, in document order
        kids: dict[str, list[Node]] = {}
        for child, tag, particle in zip(children, tags, particles):
            kids.setdefault(tag, []).append(_check(child, particle))
        return kids
    return _match_sequence(element, ctype, children, tags)


def _in_order(ctype: Complex, tags: list[str]) -> list[El] | None:
    """Each child's particle when the children's tags fit `ctype`'s sequence of distinct plain elements
    (walking the children, not the many optional particles); None when they do not, or when the type
    has a choice or a name twice: `_match_sequence` then walks the particles and names the misfit."""
    layout = ctype.layout
    if layout is None:
        return None
    (positions, required), particles = layout, ctype.particles
    matched: list[El] = []
    next_free, i, n = 0, 0, len(tags)
    while i < n:
        tag = tags[i]
        position = positions.get(tag, -1)
        if position < next_free or required[position] != required[next_free]:
            return None  # unknown, out of order or repeated, or a required particle skipped
        start = i
        while i < n and tags[i] == tag:
            i += 1
        particle = particles[position]
        assert isinstance(particle, El)  # positions has only plain elements
        if i - start < particle.min or (particle.max is not None and i - start > particle.max):
            return None
        matched.extend([particle] * (i - start))
        next_free = position + 1
    return matched if required[-1] == required[next_free] else None


def _match_sequence(
    element: etree._Element, ctype: Complex, children: list[etree._Element], tags: list[str]
) -> dict[str, list[Node]]:
    """The children matched particle by particle, as an XSD sequence reads them: raises at the first
    particle or child that does not fit."""
    kids: dict[str, list[Node]] = {}
    i, n = 0, len(children)
    for position, particle in enumerate(ctype.particles):
        if isinstance(particle, Choice):
            option = next((o for o in particle.options if i < n and tags[i] == o.qname), None)
            if option is not None:
                kids.setdefault(option.qname, []).append(_check(children[i], option))
                i += 1
            continue
        qname = particle.qname
        start = i
        room = particle.max if particle.max is not None else n
        while i < n and tags[i] == qname and i - start < room:
            i += 1
        if i > start:
            kids.setdefault(qname, []).extend([_check(children[j], particle) for j in range(start, i)])
        if i - start < particle.min:
            _raise_missing(element, ctype, children, i, position)
    if i < n:
        _raise_misplaced(element, ctype, children, i, len(ctype.particles))
    return kids


def _qnames(particle: El | Choice) -> tuple[str, ...]:
    return tuple(o.qname for o in particle.options) if isinstance(particle, Choice) else (particle.qname,)


def _raise_missing(element: etree._Element, ctype: Complex, children: list[etree._Element], i: int, position: int) -> None:
    """A required particle found no match at child `i`: blame the child if it is the misfit."""
    particle = ctype.particles[position]
    assert isinstance(particle, El)
    later = {q for p in ctype.particles[position:] for q in _qnames(p)}
    if i < len(children) and children[i].tag not in later:
        _raise_misplaced(element, ctype, children, i, position)
    path, name = _path(element), display(particle.qname)
    if any(c.tag == particle.qname for c in children[i:]):
        raise _fail(element, f"{path}: element {name!r} is out of order")
    raise _fail(element, f"{path}: required element {name!r} missing")


def _raise_misplaced(element: etree._Element, ctype: Complex, children: list[etree._Element], i: int,
                     position: int) -> None:
    """Child `i` matches no particle from `position` on: it is repeated, out of order or unknown."""
    child = children[i]
    path, name = _path(element), display(str(child.tag))
    for particle in ctype.particles[:position]:
        if child.tag not in _qnames(particle):
            continue
        if i > 0 and children[i - 1].tag == child.tag:
            most = 1 if isinstance(particle, Choice) else particle.max
            raise _fail(child, f"{path}: element {name!r} occurs more than {most} time(s)")
        raise _fail(child, f"{path}: element {name!r} is out of order")
    raise _fail(child, f"{path}: unexpected element {name!r}")
