"""Issue 14 finding 10: every AttentionData and address field of the official MeMo samples survives
parsing (`inspect --json`), and the address kept in one line is chosen alike in MeMo 1.1 and 1.2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree
from typer.testing import CliRunner

from postbud.cli.app import app

GRD = "https://data.gov.dk/model/core/"


def _samples(shared: Path) -> list[Path]:
    return sorted((shared / "memo").glob("v1.*/MeMo_Full_Example.xml"))


def _leaves_below(element: etree._Element) -> set[str]:
    return {(n.text or "").strip() for n in element.iter()
            if isinstance(n.tag, str) and not len(n) and (n.text or "").strip()}


def test_every_attention_and_address_field_survives_inspect_json(shared_dir: Path) -> None:
    samples = _samples(shared_dir)
    assert len(samples) == 2
    for sample in samples:
        root = etree.parse(str(sample)).getroot()
        wanted: set[str] = set()
        for tag in ("{https://DigitalPost.dk/MeMo-1}AttentionData", f"{{{GRD}}}Address", f"{{{GRD}}}UnstructuredAddress"):
            for element in root.iter(tag):
                wanted |= _leaves_below(element)
        result = CliRunner().invoke(app, ["inspect", str(sample), "--json"])
        assert result.exit_code == 0, result.output
        text = json.dumps(json.loads(result.output), ensure_ascii=False)
        missing = sorted(v for v in wanted if json.dumps(v, ensure_ascii=False) not in text)
        assert missing == [], f"{sample.parent.name}: {missing}"


def test_the_one_line_address_is_chosen_alike_in_both_versions(shared_dir: Path) -> None:
    from connectors.memo import parse_memo

    v11, v12 = (parse_memo(p.read_bytes()) for p in _samples(shared_dir))
    # The senders: structured only in the 1.1 sample, structured and unstructured in 1.2. The line is
    # the structured address in both (it was the unstructured one in 1.2 only).
    for message in (v11, v12):
        street = message.content_data["sender_attention.address_parts.addressLabel"]
        assert message.content_data["sender_attention.address"].startswith(street)
    assert "sender_attention.unstructured_address" in v12.content_data  # and the other is kept
    # The recipients: 1.1 has only the unstructured address (the structured one is commented out),
    # 1.2 both: each keeps what it has, and where both are given the structured one is the line.
    assert v11.attention is not None and v12.attention is not None
    assert v11.attention.address == "Bakketoppen 6, 9000 Aalborg" and v11.attention.address_parts is None
    parts = v12.attention.address_parts or {}
    assert v12.attention.address == "Gaden 7A, 3. th, C/O, 9000 Aalborg, DK" and parts["zipCode"] == "9000"
    assert v12.attention.unstructured_address == "Bakketoppen 6, 9000 Aalborg"
