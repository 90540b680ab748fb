"""The MeMo 1.1 / 1.2 content model as data: namespaces, simple types and every element's sequence.

Transcribed from the agency's XSDs (MeMo_core.xsd 1.1 and the 1.2 edit, MeMo_dataTypes.xsd and the
grd/gln/kle/form/dmv/sor/udd vocabularies). The XSD files themselves are not shipped because their
licence is unstated; `connectors.memo.validate` walks a parsed tree against these tables instead.
"""

from __future__ import annotations

import binascii
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, cached_property

MEMO = "https://DigitalPost.dk/MeMo-1"
GRD = "https://data.gov.dk/model/core/"
GLN = "https://www.gs1.dk/gs1-standarder/identifikation/gln-global-location-number/"
KLE = "http://kle-online.dk/"
FORM = "http://www.form-online.dk/"
DMV = "https://motorregister.skat.dk/"
SOR = "https://services.nsi.dk/en/Services/SOR"
UDD = "https://www.dst.dk/da/TilSalg/Forskningsservice/Dokumentation/hoejkvalitetsvariable/elevregister-2/udd#"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

#: The conventional prefixes, used by the writer and to name elements in error messages.
PREFIXES: dict[str, str] = {
    MEMO: "memo",
    GRD: "grd",
    GLN: "gln",
    KLE: "kle",
    FORM: "form",
    DMV: "dmv",
    SOR: "sor",
    UDD: "udd",
}

VERSIONS = ("1.1", "1.2")
ID_TYPES = ("CPR", "CVR", "Andet")

_UUID4 = re.compile(r"[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-4[a-fA-F0-9]{3}-[aAbB89][a-fA-F0-9]{3}-[a-fA-F0-9]{12}")
_DATETIME = re.compile(r"-?\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")
_DATE = re.compile(r"-?\d{4,}-\d{2}-\d{2}(Z|[+-]\d{2}:\d{2})?")
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_INTEGER = re.compile(r"[+-]?\d+")
_LANGUAGE = re.compile(r"[a-zA-Z]{1,2}")
_CPR_LIKE = re.compile(r"\d{6}-?\d{4}")

#: A simple-type check: the reason a value is invalid (to follow the element path), or None.
Check = Callable[[str], "str | None"]


def shown(value: str) -> str:
    """A value quoted for an error message: shortened, and CPR-shaped digit runs masked."""
    short = value if len(value) <= 64 else value[:61] + "..."
    return "'" + _CPR_LIKE.sub("**********", short) + "'"


def _max_len(limit: int) -> Check:
    def check(value: str) -> str | None:
        if len(value) > limit:
            return f"is {len(value)} characters, over the limit of {limit}"
        return None

    return check


def _uuid4(value: str) -> str | None:
    return None if _UUID4.fullmatch(value.strip()) else f"{shown(value)} is not a version-4 UUID"


def _datetime(value: str) -> str | None:
    text = value.strip()
    if _DATETIME.fullmatch(text):
        try:
            datetime.fromisoformat(text)
            return None
        except ValueError:
            pass
    return f"{shown(value)} is not a UTC date-time ending in Z"


def _date(value: str) -> str | None:
    text = value.strip()
    if _DATE.fullmatch(text):
        try:
            date.fromisoformat(text[:10])
            return None
        except ValueError:
            pass
    return f"{shown(value)} is not a date (YYYY-MM-DD)"


def _boolean(value: str) -> str | None:
    ok = value.strip() in ("true", "false", "1", "0")
    return None if ok else f"{shown(value)} is not a boolean (true or false)"


def _decimal(value: str) -> str | None:
    return None if _DECIMAL.fullmatch(value.strip()) else f"{shown(value)} is not a decimal number"


def _language(value: str) -> str | None:
    ok = _LANGUAGE.fullmatch(value.strip())
    return None if ok else f"{shown(value)} is not a language code of at most 2 letters"


def _long_at_most(limit: int) -> Check:
    def check(value: str) -> str | None:
        text = value.strip()
        if not _INTEGER.fullmatch(text) or not -(2**63) <= int(text) <= limit:
            return f"{shown(value)} is not a whole number of at most {len(str(limit))} digits"
        return None

    return check


def _one_of(*allowed: str) -> Check:
    def check(value: str) -> str | None:
        if value.strip() in allowed:
            return None
        return f"{shown(value)} is not one of {', '.join(allowed)}"

    return check


def decode_base64(value: str) -> bytes:
    """xs:base64Binary to bytes: whitespace is allowed anywhere, padding is required."""
    # str.split + strict binascii: about 40x faster than a regex pass on a multi-megabyte file.
    return binascii.a2b_base64("".join(value.split()), strict_mode=True)


def read_base64(value: str) -> bytes | None:
    """`decode_base64`, or None if invalid (validation keeps the bytes: an attachment is decoded once)."""
    try:
        return decode_base64(value)
    except (binascii.Error, ValueError):
        return None


def _base64(value: str) -> str | None:
    return "is not valid base64" if read_base64(value) is None else None


@dataclass(frozen=True)
class Simple:
    """A text-only element or attribute type."""

    name: str
    check: Check


TEXT = Simple("memoTextType", _max_len(256))
COMMENT = Simple("memoCommentType", _max_len(512))
# The two XSD copies disagree (150 vs 160); accept the larger, as PROTOCOLS.md advises.
NOTIFICATION = Simple("memoNotificationType", _max_len(160))
URI = Simple("memoUriType", _max_len(256))
LICENSE = Simple("memoLicenseNumberType", _max_len(7))
UUID4 = Simple("memoUuidType", _uuid4)
DATETIME = Simple("memoDateTimeType", _datetime)
DATE = Simple("xs:date", _date)
BOOLEAN = Simple("xs:boolean", _boolean)
DECIMAL = Simple("xs:decimal", _decimal)
LANGUAGE = Simple("memoLanguageType", _language)
BASE64 = Simple("xs:base64Binary", _base64)
MESSAGE_TYPE = Simple("memoMessageType", _one_of("DIGITALPOST", "NEMSMS"))
ID_TYPE = Simple("idType", _one_of(*ID_TYPES))
PNUMBER = Simple("memoPNumberType", _long_at_most(9_999_999_999))
GLN_NUMBER = Simple("memoGLNType", _long_at_most(9_999_999_999_999))


@dataclass(frozen=True)
class Attr:
    name: str
    type: Simple
    required: bool = False


@dataclass(frozen=True)
class El:
    """One element particle of a sequence; `max` None means unbounded."""

    ns: str
    name: str
    type: Simple | Complex
    min: int = 1
    max: int | None = 1

    @cached_property  # compared with every child's tag while validating
    def qname(self) -> str:
        return f"{{{self.ns}}}{self.name}"


@dataclass(frozen=True)
class Choice:
    """At most one of `options` (the only xs:choice MeMo has: Action's Reservation | EntryPoint)."""

    options: tuple[El, ...]


@dataclass(frozen=True)
class Complex:
    particles: tuple[El | Choice, ...]
    attributes: tuple[Attr, ...] = ()

    @cached_property
    def declared(self) -> dict[str, Attr]:
        """The attributes by name."""
        return {a.name: a for a in self.attributes}

    @cached_property
    def layout(self) -> tuple[dict[str, int], tuple[int, ...]] | None:
        """For plain elements with distinct names (every MeMo type but Action): each particle's place by
        name, and how many of the first k particles are required for each k; else None."""
        plain = [p for p in self.particles if isinstance(p, El)]
        if len(plain) != len(self.particles) or len({p.qname for p in plain}) != len(plain):
            return None
        required = (0, *itertools.accumulate(int(p.min > 0) for p in plain))
        return {p.qname: place for place, p in enumerate(plain)}, required


def _seq(*particles: El | Choice) -> Complex:
    return Complex(particles)


def _m(name: str, type_: Simple | Complex, lo: int = 1, hi: int | None = 1) -> El:
    return El(MEMO, name, type_, lo, hi)


def _opt(ns: str, name: str, type_: Simple | Complex) -> El:
    return El(ns, name, type_, 0, 1)


def _req(ns: str, name: str, type_: Simple | Complex) -> El:
    return El(ns, name, type_, 1, 1)


# grd / gln / kle / form / dmv / sor / udd vocabularies
ADDRESS_POINT = _seq(*(_opt(GRD, n, TEXT) for n in (
    "geographicEastingMeasure", "geographicNorthingMeasure", "geographicHeightMeasure")))
ADDRESS = _seq(
    *(_opt(GRD, n, TEXT) for n in (
        "id", "addressLabel", "houseNumber", "door", "floor", "co", "zipCode", "city", "country")),
    _opt(GRD, "AddressPoint", ADDRESS_POINT),
)
UNSTRUCTURED_ADDRESS = _seq(_req(GRD, "unstructured", TEXT))
CPR_DATA = _seq(_req(GRD, "cprNumber", TEXT), _opt(GRD, "name", TEXT))
CVR_DATA = _seq(_req(GRD, "cvrNumber", TEXT), _opt(GRD, "companyName", TEXT))
EID = _seq(_req(GRD, "eID", TEXT), _opt(GRD, "label", TEXT))
PRODUCTION_UNIT = _seq(_req(GRD, "productionUnitNumber", PNUMBER), _opt(GRD, "productionUnitName", TEXT))
SE_NUMBER = _seq(_req(GRD, "seNumber", TEXT), _opt(GRD, "companyName", TEXT))
PROPERTY_NUMBER = _seq(_req(GRD, "propertyNumber", TEXT))
GLOBAL_LOCATION = _seq(_req(GLN, "globalLocationNumber", GLN_NUMBER), _opt(GLN, "location", TEXT))
KLE_DATA = _seq(_req(KLE, "subjectKey", TEXT), _req(KLE, "version", TEXT),
                _opt(KLE, "activityFacet", TEXT), _req(KLE, "label", TEXT))
FORM_DATA = _seq(_req(FORM, "taskKey", TEXT), _req(FORM, "version", TEXT),
                 _opt(FORM, "activityFacet", TEXT), _req(FORM, "label", TEXT))
MOTOR_VEHICLE = _seq(_req(DMV, "licenseNumber", LICENSE), _opt(DMV, "chassisNumber", TEXT))
SOR_DATA = _seq(_req(SOR, "sorIdentifier", TEXT), _opt(SOR, "entryName", TEXT))
EDUCATION = _seq(_req(UDD, "educationCode", TEXT), _opt(UDD, "educationName", TEXT))

# memo core
ATTENTION_DATA = _seq(
    _m("AttentionPerson", _seq(_m("personID", TEXT, 0), _m("label", TEXT, 0)), 0),
    _opt(GRD, "ProductionUnit", PRODUCTION_UNIT),
    _opt(GLN, "GlobalLocationNumber", GLOBAL_LOCATION),
    _m("EMail", _seq(_m("emailAddress", TEXT), _m("relatedAgent", TEXT, 0)), 0),
    _opt(GRD, "SEnumber", SE_NUMBER),
    _m("Telephone", _seq(_m("telephoneNumber", TEXT), _m("relatedAgent", TEXT, 0)), 0),
    _opt(GRD, "EID", EID),
    _m("ContentResponsible", _seq(_m("contentResponsibleID", TEXT, 0), _m("label", TEXT, 0)), 0),
    _m("GeneratingSystem", _seq(_m("generatingSystemID", TEXT), _m("label", TEXT, 0)), 0),
    _opt(SOR, "SORdata", SOR_DATA),
    _opt(GRD, "Address", ADDRESS),
    _opt(GRD, "UnstructuredAddress", UNSTRUCTURED_ADDRESS),
)
CONTACT_POINT = _seq(
    _m("contactGroup", TEXT, 0),
    _m("contactPointID", TEXT),
    _m("label", TEXT, 0),
    _m("ContactInfo", _seq(_m("label", TEXT), _m("value", TEXT)), 0, 2),
)
REPRESENTATIVE = _seq(_m("representativeID", TEXT, 0), _m("idType", ID_TYPE, 0),
                      _m("idTypeLabel", TEXT, 0), _m("label", TEXT, 0))
CONTENT_DATA = _seq(
    _opt(GRD, "CPRdata", CPR_DATA),
    _opt(GRD, "CVRdata", CVR_DATA),
    _opt(DMV, "MotorVehicle", MOTOR_VEHICLE),
    _opt(GRD, "PropertyNumber", PROPERTY_NUMBER),
    _m("CaseID", _seq(_m("caseID", TEXT), _m("caseSystem", TEXT)), 0),
    _opt(KLE, "KLEdata", KLE_DATA),
    _opt(FORM, "FORMdata", FORM_DATA),
    _opt(GRD, "ProductionUnit", PRODUCTION_UNIT),
    _opt(UDD, "Education", EDUCATION),
    _opt(GRD, "Address", ADDRESS),
    _opt(GRD, "UnstructuredAddress", UNSTRUCTURED_ADDRESS),
    _m("AdditionalContentData", _seq(
        _m("contentDataType", TEXT, 0), _m("contentDataName", TEXT), _m("contentDataValue", TEXT)), 0, 10),
)
REPLY_DATA = _seq(
    _m("messageID", TEXT, 0),
    _m("messageUUID", UUID4),
    _m("replyUUID", UUID4, 0),
    *(_m(n, TEXT, 0) for n in ("senderID", "recipientID", "caseID", "contactPointID", "generatingSystemID")),
    _m("comment", COMMENT, 0),
    _m("AdditionalReplyData", _seq(_m("label", TEXT), _m("value", TEXT)), 0, 4),
)
RESERVATION = _seq(
    _m("description", TEXT),
    _m("reservationUUID", UUID4),
    _m("abstract", TEXT),
    _m("location", TEXT),
    _m("startDateTime", DATETIME),
    _m("endDateTime", DATETIME),
    _m("organizerMail", TEXT, 0),
    _m("organizerName", TEXT, 0),
)
ACTION = _seq(
    _m("label", TEXT),
    _m("actionCode", TEXT),
    _m("startDateTime", DATETIME, 0),
    _m("endDateTime", DATETIME, 0),
    Choice((_m("Reservation", RESERVATION, 0), _m("EntryPoint", _seq(_m("url", URI)), 0))),
)
FILE = _seq(_m("encodingFormat", TEXT), _m("filename", TEXT), _m("language", LANGUAGE), _m("content", BASE64))


def _document(id_name: str, *, actions: bool) -> Complex:
    parts: list[El | Choice] = [_m(id_name, TEXT, 0), _m("label", TEXT, 0), _m("File", FILE, 1, None)]
    if actions:
        parts.append(_m("Action", ACTION, 0, None))
    return Complex(tuple(parts))


MESSAGE_BODY = _seq(
    _m("createdDateTime", DATETIME),
    _m("MainDocument", _document("mainDocumentID", actions=True)),
    _m("AdditionalDocument", _document("additionalDocumentID", actions=True), 0, None),
    _m("TechnicalDocument", _document("technicalDocumentID", actions=False), 0, None),
)


@cache
def message_element(version: str) -> El:
    """The root element's definition for MeMo `version` ("1.1" or "1.2")."""
    v12 = version == "1.2"
    sender = _seq(
        _m("senderID", TEXT),
        _m("idType", ID_TYPE),
        _m("idTypeLabel", TEXT, 0),
        _m("label", TEXT),
        _m("AttentionData", ATTENTION_DATA, 0),
        _m("ContactPoint", CONTACT_POINT, 0),
        *((_m("Representative", REPRESENTATIVE, 0),) if v12 else ()),
    )
    recipient = _seq(
        _m("recipientID", TEXT),
        _m("idType", ID_TYPE),
        _m("idTypeLabel", TEXT, 0),
        _m("label", TEXT, 0),
        _m("AttentionData", ATTENTION_DATA, 0),
        _m("ContactPoint", CONTACT_POINT, 0),
    )
    forward = _seq(
        _m("messageUUID", UUID4),
        _m("originalMessageDateTime", DATETIME),
        _m("originalSender", TEXT),
        _m("originalContentResponsible", TEXT, 0),
        *((_m("originalRepresentative", TEXT, 0),) if v12 else ()),
        _m("contactPointID", TEXT, 0),
        _m("comment", COMMENT, 0),
    )
    # 1.2 made mandatory / legalNotification optional; 1.1 requires both.
    flag_min = 0 if v12 else 1
    header = _seq(
        _m("messageType", MESSAGE_TYPE),
        _m("messageUUID", UUID4),
        _m("messageID", TEXT, 0),
        _m("messageCode", TEXT, 0),
        _m("label", TEXT),
        _m("notification", NOTIFICATION, 0),
        _m("additionalNotification", TEXT, 0),
        _m("reply", BOOLEAN, 0),
        _m("replyByDateTime", DATETIME, 0),
        _m("doNotDeliverUntilDate", DATE, 0),
        _m("mandatory", BOOLEAN, flag_min),
        _m("legalNotification", BOOLEAN, flag_min),
        _m("postType", TEXT, 0),
        _m("Sender", sender),
        _m("Recipient", recipient),
        _m("ContentData", CONTENT_DATA, 0),
        _m("ForwardData", forward, 0),
        _m("ReplyData", REPLY_DATA, 0, None),
    )
    attributes: tuple[Attr, ...] = (Attr("memoVersion", DECIMAL, required=True),)
    if not v12:
        attributes += (Attr("memoSchVersion", TEXT, required=True),)
    return _m("Message", Complex((_m("MessageHeader", header), _m("MessageBody", MESSAGE_BODY, 0)), attributes))
