"""Where each flat value of the normalized model lives in MeMo, shared by the reader and the writer.

`NormalizedMessage.content_data` keys (flat strings; anything the model has no field for):

- ContentData: cpr, cpr_name, cvr, cvr_name, license_number, chassis_number, property_number,
  case_id, case_system, kle, kle_version, kle_activity, kle_label, form, form_version,
  form_activity, form_label, p_number, p_name, education_code, education_name, address,
  and `additional.<contentDataName>` for each AdditionalContentData;
- header: memo_message_id, message_code, additional_notification, reply_by, do_not_deliver_until;
- Sender: sender_id_type_label, `sender_attention.<Attention field>`, `sender_contact_point.{id,group,label}`,
  `sender_contact_info.<label>`, representative_{id,id_type,id_type_label,label} (MeMo 1.2);
- Recipient: recipient_id_type_label, `recipient_contact_point.*`, `recipient_contact_info.<label>`;
- ForwardData: forward_original_representative (1.2), forward_contact_point_id;
- Document actions are dicts keyed by `ACTION_KEYS`, `RESERVATION_KEYS` and `url`.
- ReplyData n (0-based): `reply.<n>.contact_point_id`, `reply.<n>.generating_system_id`,
  `reply.<n>.extra.<label>` for each AdditionalReplyData.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from lxml import etree

from connectors.memo.schema import DMV, FORM, GLN, GRD, KLE, MEMO, SOR, UDD
from connectors.memo.tree import Node
from core.domain import Attention


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


@dataclass(frozen=True)
class Leaf:
    """A flat value at `container/leaf` below some parent element, in schema order."""

    key: str
    container: str
    leaf: str


def _leaves(ns: str, container: str, *pairs: tuple[str, str], leaf_ns: str | None = None) -> tuple[Leaf, ...]:
    return tuple(Leaf(key, q(ns, container), q(leaf_ns or ns, leaf)) for key, leaf in pairs)


ATTENTION_LEAVES: tuple[Leaf, ...] = (
    *_leaves(MEMO, "AttentionPerson", ("person_id", "personID"), ("person_name", "label")),
    *_leaves(GRD, "ProductionUnit", ("production_unit", "productionUnitNumber"),
             ("production_unit_name", "productionUnitName")),
    *_leaves(GLN, "GlobalLocationNumber", ("gln", "globalLocationNumber"), ("gln_location", "location")),
    *_leaves(MEMO, "EMail", ("email", "emailAddress"), ("email_related_agent", "relatedAgent")),
    *_leaves(GRD, "SEnumber", ("se_number", "seNumber"), ("se_company_name", "companyName")),
    *_leaves(MEMO, "Telephone", ("telephone", "telephoneNumber"), ("telephone_related_agent", "relatedAgent")),
    *_leaves(GRD, "EID", ("eid", "eID"), ("eid_label", "label")),
    *_leaves(MEMO, "ContentResponsible", ("content_responsible_id", "contentResponsibleID"),
             ("content_responsible", "label")),
    *_leaves(MEMO, "GeneratingSystem", ("generating_system_id", "generatingSystemID"),
             ("generating_system", "label")),
    *_leaves(SOR, "SORdata", ("sor", "sorIdentifier"), ("sor_name", "entryName")),
)

CONTENT_LEAVES: tuple[Leaf, ...] = (
    *_leaves(GRD, "CPRdata", ("cpr", "cprNumber"), ("cpr_name", "name")),
    *_leaves(GRD, "CVRdata", ("cvr", "cvrNumber"), ("cvr_name", "companyName")),
    *_leaves(DMV, "MotorVehicle", ("license_number", "licenseNumber"), ("chassis_number", "chassisNumber")),
    *_leaves(GRD, "PropertyNumber", ("property_number", "propertyNumber")),
    *_leaves(MEMO, "CaseID", ("case_id", "caseID"), ("case_system", "caseSystem")),
    *_leaves(KLE, "KLEdata", ("kle", "subjectKey"), ("kle_version", "version"),
             ("kle_activity", "activityFacet"), ("kle_label", "label")),
    *_leaves(FORM, "FORMdata", ("form", "taskKey"), ("form_version", "version"),
             ("form_activity", "activityFacet"), ("form_label", "label")),
    *_leaves(GRD, "ProductionUnit", ("p_number", "productionUnitNumber"), ("p_name", "productionUnitName")),
    *_leaves(UDD, "Education", ("education_code", "educationCode"), ("education_name", "educationName")),
)


#: Document Action dict keys and their MeMo elements (the url is EntryPoint/url).
ACTION_KEYS = (("label", "label"), ("action_code", "actionCode"), ("start", "startDateTime"), ("end", "endDateTime"))
RESERVATION_KEYS = (
    ("description", "description"),
    ("reservation_uuid", "reservationUUID"),
    ("abstract", "abstract"),
    ("location", "location"),
    ("reservation_start", "startDateTime"),
    ("reservation_end", "endDateTime"),
    ("organizer_mail", "organizerMail"),
    ("organizer_name", "organizerName"),
)


def text_of(parent: Node | None, tag: str, *below: str) -> str | None:
    """The stripped text at `tag/below...` (qualified names) below `parent`, or None when absent or empty."""
    if parent is None:
        return None
    found = parent.kids.get(tag)  # most reads are one step, and many find nothing
    if not found:
        return None
    node = found[0]
    for tag in below:
        found = node.kids.get(tag)
        if not found:
            return None
        node = found[0]
    text = node.text
    return (text.strip() or None) if text else None


def read_leaves(parent: Node | None, leaves: tuple[Leaf, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    if parent is None or not parent.kids:
        return found
    for leaf in leaves:
        value = text_of(parent, leaf.container, leaf.leaf)
        if value is not None:
            found[leaf.key] = value
    return found


def write_leaves(parent: etree._Element, leaves: tuple[Leaf, ...], values: Mapping[str, str | None]) -> None:
    """Append each container holding at least one present value, its leaves in schema order."""
    container: etree._Element | None = None
    current = ""
    for leaf in leaves:
        if leaf.container != current:
            current, container = leaf.container, None
        value = values.get(leaf.key)
        if value is None:
            continue
        if container is None:
            container = etree.SubElement(parent, leaf.container)
        etree.SubElement(container, leaf.leaf).text = value


def read_unstructured(parent: Node | None) -> str | None:
    """The unstructured address when a structured one is given too (else it is the line itself)."""
    if parent is None or parent.first(q(GRD, "Address")) is None:
        return None
    return text_of(parent, q(GRD, "UnstructuredAddress"), q(GRD, "unstructured"))


def read_address_parts(parent: Node | None) -> dict[str, str] | None:
    """Every leaf of grd:Address as given (AddressPoint's as `AddressPoint.<leaf>`)."""
    found = parent.first(q(GRD, "Address")) if parent is not None else None
    if found is None:
        return None
    address = found.element
    parts: dict[str, str] = {}
    for node in address.iter():
        if node is address or not isinstance(node.tag, str) or len(node):
            continue
        name = etree.QName(node).localname
        owner = node.getparent()
        if owner is not None and owner is not address:
            name = f"{etree.QName(owner).localname}.{name}"
        if (node.text or "").strip():
            parts[name] = (node.text or "").strip()
    return parts or None


def read_address(parent: Node | None) -> str | None:
    """The structured grd:Address joined into one line when given, else the unstructured address:
    the same preference whatever the MeMo version (both are kept: `read_unstructured`, `read_address_parts`)."""
    if parent is None:
        return None
    address = parent.first(q(GRD, "Address"))
    if address is None:
        return text_of(parent, q(GRD, "UnstructuredAddress"), q(GRD, "unstructured"))

    def part(name: str) -> str:
        return text_of(address, q(GRD, name)) or ""

    street = " ".join(p for p in (part("addressLabel"), part("houseNumber")) if p)
    unit = ". ".join(p for p in (part("floor"), part("door")) if p)
    town = " ".join(p for p in (part("zipCode"), part("city")) if p)
    line = ", ".join(p for p in (street, unit, part("co"), town, part("country")) if p)
    return line or None


def write_address(parent: etree._Element, value: str | None) -> None:
    if value is not None:
        unstructured = etree.SubElement(parent, q(GRD, "UnstructuredAddress"))
        etree.SubElement(unstructured, q(GRD, "unstructured")).text = value


def read_attention(data: Node | None) -> Attention | None:
    if data is None:
        return None
    return Attention(**read_leaves(data, ATTENTION_LEAVES), address=read_address(data),
                     unstructured_address=read_unstructured(data), address_parts=read_address_parts(data))


def write_attention(parent: etree._Element, attention: Attention | None) -> None:
    if attention is None:
        return
    values = dataclasses.asdict(attention)
    if not any(v is not None for v in values.values()):
        return
    data = etree.SubElement(parent, q(MEMO, "AttentionData"))
    write_leaves(data, ATTENTION_LEAVES, values)
    write_address(data, attention.unstructured_address or attention.address)


def attention_to_items(prefix: str, attention: Attention | None) -> dict[str, str]:
    """Flatten an Attention into `content_data` items (for the sender's, which the model has no field for)."""
    if attention is None:
        return {}
    items: dict[str, str] = {}
    for key, value in dataclasses.asdict(attention).items():
        if isinstance(value, dict):  # address_parts: one flat item per leaf
            items.update({f"{prefix}{key}.{part}": text for part, text in value.items()})
        elif value is not None:
            items[f"{prefix}{key}"] = value
    return items


def attention_from_items(prefix: str, items: Mapping[str, str]) -> Attention | None:
    names = {f.name for f in dataclasses.fields(Attention)}
    values: dict[str, object] = {k[len(prefix):]: v for k, v in items.items()
                                 if k.startswith(prefix) and k[len(prefix):] in names}
    parts = {k[len(prefix) + len("address_parts."):]: v for k, v in items.items()
             if k.startswith(f"{prefix}address_parts.")}
    if parts:
        values["address_parts"] = parts
    return Attention(**values) if values else None  # type: ignore[arg-type]


def read_contact_point(point: Node | None, prefix: str) -> dict[str, str]:
    """`<prefix>contact_point.{id,group,label}` and `<prefix>contact_info.<label>` items."""
    if point is None:
        return {}
    items: dict[str, str] = {}
    for key, name in (("group", "contactGroup"), ("id", "contactPointID"), ("label", "label")):
        value = text_of(point, q(MEMO, name))
        if value is not None:
            items[f"{prefix}contact_point.{key}"] = value
    for info in point.all(q(MEMO, "ContactInfo")):
        label = text_of(info, q(MEMO, "label"))
        if label is not None:
            items[f"{prefix}contact_info.{label}"] = text_of(info, q(MEMO, "value")) or ""
    return items


def write_contact_point(parent: etree._Element, prefix: str, items: Mapping[str, str]) -> None:
    point_id = items.get(f"{prefix}contact_point.id")
    if point_id is None:
        return  # contactPointID is required, so without it there is no ContactPoint
    point = etree.SubElement(parent, q(MEMO, "ContactPoint"))
    for key, name in (("group", "contactGroup"), ("id", "contactPointID"), ("label", "label")):
        value = items.get(f"{prefix}contact_point.{key}")
        if value is not None:
            etree.SubElement(point, q(MEMO, name)).text = value
    info_prefix = f"{prefix}contact_info."
    for key, value in items.items():
        if key.startswith(info_prefix):
            info = etree.SubElement(point, q(MEMO, "ContactInfo"))
            etree.SubElement(info, q(MEMO, "label")).text = key[len(info_prefix):]
            etree.SubElement(info, q(MEMO, "value")).text = value
