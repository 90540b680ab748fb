"""The validated tree the reader reads from indexes every element's children exactly as lxml finds them."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from connectors import safexml
from connectors.memo.tree import Node
from connectors.memo.validate import validate

SAMPLES = [f"v{version}/{name}.xml" for version in ("1.1", "1.2")
           for name in ("MeMo_Full_Example", "MeMo_Minimum_Example", "MeMo_NemSMS", "MeMo_with_attachment")]


def _walk(node: Node) -> int:
    """Check `node` and below against lxml's own find/findall; the number of elements seen."""
    element = node.element
    assert node.text == element.text
    tags = {child.tag for child in element if isinstance(child.tag, str)}
    assert set(node.kids) == tags
    for tag in tags:
        assert [kid.element for kid in node.all(tag)] == element.findall(tag)
        first = node.first(tag)
        assert first is not None and first.element == element.find(tag)
    assert node.first("{urn:nowhere}absent") is None and node.all("{urn:nowhere}absent") == []
    return 1 + sum(_walk(kid) for kids in node.kids.values() for kid in kids)


@pytest.mark.parametrize("sample", SAMPLES)
def test_the_validated_tree_indexes_every_element_as_lxml_finds_it(shared_dir: Path, sample: str) -> None:
    # GIVEN an official sample, with a comment added in a leaf (its text then ends at the comment)
    root = safexml.parse((shared_dir / "memo" / sample).read_bytes())
    label = root.find(".//{https://DigitalPost.dk/MeMo-1}label")
    assert label is not None
    label.append(etree.Comment("note"))
    label[-1].tail = " more"
    version = "1.2" if sample.startswith("v1.2") else "1.1"
    # WHEN it is validated
    tree = validate(root, version)
    # THEN every element of the document is in the tree, its children indexed as find/findall see them
    assert _walk(tree) == sum(1 for e in root.iter() if isinstance(e.tag, str))


def test_an_attachment_split_by_a_comment_is_decoded_by_the_reader_to_the_same_bytes(shared_dir: Path) -> None:
    # GIVEN a letter with an attachment, and the same letter with a comment after its base64 content
    from connectors.memo import parse_memo

    raw = (shared_dir / "memo" / "v1.2" / "MeMo_with_attachment.xml").read_bytes()
    root = safexml.parse(raw)
    content = root.find(".//{https://DigitalPost.dk/MeMo-1}content")
    assert content is not None
    content.append(etree.Comment("note"))
    commented = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    # WHEN both are read (validation leaves the commented content to the reader to decode)
    plain, split = parse_memo(raw), parse_memo(commented)
    # THEN the attachment's bytes are the same
    files = [f.content for f in plain.files()]
    assert files and all(files) and [f.content for f in split.files()] == files


def _shape(node: Node) -> tuple[object, ...]:
    return (node.element.tag, node.text, node.data,
            tuple((tag, tuple(_shape(kid) for kid in kids)) for tag, kids in node.kids.items()))


@pytest.mark.parametrize("sample", SAMPLES)
def test_the_in_order_walk_builds_the_tree_the_particle_walk_builds(
        shared_dir: Path, sample: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an official sample, validated the quick way (children walked against the sequence)
    from connectors.memo import validate as validation

    root = safexml.parse((shared_dir / "memo" / sample).read_bytes())
    version = "1.2" if sample.startswith("v1.2") else "1.1"
    quick = _shape(validate(root, version))
    # WHEN it is validated again with every sequence matched particle by particle
    monkeypatch.setattr(validation, "_in_order", lambda ctype, tags: None)
    # THEN the trees are the same
    assert _shape(validate(root, version)) == quick
