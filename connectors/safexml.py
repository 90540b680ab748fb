"""Parses provider XML with no DTD of any kind, in any encoding, and nothing resolved or fetched."""

from __future__ import annotations

import codecs
import re
from typing import Any

from lxml import etree

# XML 1.0 appendix F: the first bytes name the encoding family before any declaration is read.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_NO_BOM = (
    (b"\x3c\x00\x00\x00", "utf-32-le"),
    (b"\x00\x00\x00\x3c", "utf-32-be"),
    (b"\x3c\x00\x3f\x00", "utf-16-le"),
    (b"\x00\x3c\x00\x3f", "utf-16-be"),
    (b"\x3c\x00", "utf-16-le"),
    (b"\x00\x3c", "utf-16-be"),
)
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']""")
_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
# Any markup declaration at all: a DOCTYPE (internal or external subset) or a stray ENTITY/notation.
_MARKUP_DECLARATION = re.compile(r"<!\s*(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)
_MARKUP_DECLARATION_BYTES = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)
_UNICODE_FAMILIES = frozenset({"utf-8", "utf-16", "utf-32"})


class UnsafeXmlError(ValueError):
    """The input is not XML this process will parse; `str(error)` says why."""


# lxml ships no types: Resolver is Any to mypy here (misc), and typed by lxml-stubs where installed.
class _RefuseEverything(etree.Resolver):  # type: ignore[misc,unused-ignore]
    """Whatever libxml2 would load (DTD, entity, XInclude), it gets an empty document instead."""

    # lxml-stubs miss the `context` argument lxml passes; the signature here is the runtime one.
    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:  # type: ignore[override,unused-ignore]
        return self.resolve_string("", context)  # type: ignore[call-arg,unused-ignore]


def decode(raw: bytes) -> tuple[str, str]:
    """The document's encoding (by BOM, byte pattern, then declaration) and its text without the declaration.

    Raises `UnsafeXmlError` for an unknown encoding, bytes that do not decode, or a declaration that
    contradicts the byte pattern (a UTF-16 document cannot declare ISO-8859-1).
    """
    encoding = _sniff(raw)
    try:
        text = raw.decode(encoding)
    except (UnicodeDecodeError, LookupError) as error:
        raise UnsafeXmlError(f"the bytes are not {encoding}: {error}") from None
    return encoding, _DECLARATION.sub("", text.removeprefix("\ufeff"), count=1)


def unicode_family(raw: bytes) -> str | None:
    """The UTF-8/16/32 codec the first bytes prove (BOM or `<?` pattern), else None."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return encoding
    return next((encoding for pattern, encoding in _NO_BOM if raw.startswith(pattern)), None)


def _sniff(raw: bytes) -> str:
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return _check_declared(raw[len(bom):].decode(encoding, "ignore")[:200].encode("ascii", "ignore"), encoding)
    for pattern, encoding in _NO_BOM:
        if raw.startswith(pattern):
            return _check_declared(raw[:800].decode(encoding, "ignore")[:200].encode("ascii", "ignore"), encoding)
    declared = _DECLARED.match(raw[:200])
    if declared is None:
        return "utf-8"
    name = declared.group(1).decode("ascii")
    try:
        family = codecs.lookup(name).name
    except LookupError:
        raise UnsafeXmlError(f"unknown encoding {name!r}") from None
    if family.startswith(("utf-16", "utf-32")) or not _ascii_compatible(family):
        raise UnsafeXmlError(f"declared encoding {name!r} does not match the document's bytes")
    return family


def _check_declared(head: bytes, encoding: str) -> str:
    declared = _DECLARED.match(head)
    if declared is not None:
        name = declared.group(1).decode("ascii")
        try:
            family = codecs.lookup(name).name
        except LookupError:
            raise UnsafeXmlError(f"unknown encoding {name!r}") from None
        if family.replace("-le", "").replace("-be", "") not in _UNICODE_FAMILIES or family[:6] != encoding[:6]:
            raise UnsafeXmlError(f"declared encoding {name!r} does not match the document's {encoding} bytes")
    return encoding


def _ascii_compatible(encoding: str) -> bool:
    # UTF-7 and EBCDIC pages would let markup hide from a byte-level look; only ASCII supersets pass.
    try:
        return "<!DOCTYPE x>".encode(encoding) == b"<!DOCTYPE x>" and encoding != "utf-7"
    except (LookupError, UnicodeError):
        return False


def parse(raw: bytes, *, huge_tree: bool = False) -> etree._Element:
    """The root element of `raw`; raises `UnsafeXmlError` for a DTD of any kind, `etree.XMLSyntaxError`
    for XML that is not well-formed.

    The text checked for markup declarations is exactly the text libxml2 parses: it is decoded here
    and handed over as UTF-8 with the encoding forced, so no encoding trick can hide a DOCTYPE.
    """
    if _sniff(raw) == "utf-8":
        # In UTF-8 a markup character is always its ASCII byte, so the bytes themselves can be checked
        # (and not copied): the common case, and the one that must stay cheap at 50 MB.
        if _MARKUP_DECLARATION_BYTES.search(raw):
            raise UnsafeXmlError("DOCTYPE/entities are not allowed")
        return _parse_utf8(raw, huge_tree=huge_tree)
    return parse_text(decode(raw)[1], huge_tree=huge_tree)


def parse_text(text: str, *, huge_tree: bool = False) -> etree._Element:
    """As `parse`, for text already decoded (its XML declaration, if any, is dropped)."""
    text = _DECLARATION.sub("", text.removeprefix("\ufeff"), count=1)
    if _MARKUP_DECLARATION.search(text):
        raise UnsafeXmlError("DOCTYPE/entities are not allowed")
    return _parse_utf8(text.encode("utf-8", "surrogatepass"), huge_tree=huge_tree)


def _parse_utf8(data: bytes, *, huge_tree: bool) -> etree._Element:
    parser = etree.XMLParser(
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=huge_tree,
        collect_ids=False,
    )
    parser.resolvers.add(_RefuseEverything())
    root = etree.fromstring(data, parser)
    if root is None:
        raise UnsafeXmlError("empty XML document")
    docinfo = root.getroottree().docinfo
    # `doctype` is missing from lxml-stubs but present at runtime.
    if getattr(docinfo, "doctype", "") or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXmlError("DOCTYPE/entities are not allowed")
    return root
