"""Track and trace says what it did not show: a search cut off by its limit says so, and an id prefix
that is too short or names several messages is refused with the candidates."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.storage.db import Store
from postbud.trace import MessageNotFound, SearchFilter, search_page, show, show_message
from postbud.trace_actions import NotFound, resend
from tests.conftest import MakeConfig
from tests.postbud.ops_testkit import NOW, Spec, add, store_for


@pytest.fixture
def store(make_config: MakeConfig) -> Store:
    store = store_for(make_config())
    for i, suffix in enumerate(("1", "2", "3")):
        add(store, Spec(NOW - timedelta(hours=i), id=f"abcdef00{suffix}" + "0" * 23, title=f"Brev {i}"))
    add(store, Spec(NOW - timedelta(hours=5), id="f" * 32, title="Alone"))
    return store


def test_a_search_cut_off_by_its_limit_says_so(store: Store) -> None:
    page = search_page(store, SearchFilter(limit=2))
    assert [r["title"] for r in page.rows] == ["Brev 0", "Brev 1"] and page.truncated
    page = search_page(store, SearchFilter(limit=4))
    assert len(page.rows) == 4 and not page.truncated
    page = search_page(store, SearchFilter(limit=None))
    assert len(page.rows) == 4 and not page.truncated


def test_a_short_or_ambiguous_prefix_is_refused_with_candidates(store: Store) -> None:
    with pytest.raises(MessageNotFound, match="at least its first 6 characters"):
        show_message(store, "abcde")
    with pytest.raises(MessageNotFound, match="abcdef00 is the start of 3 message ids") as info:
        show_message(store, "abcdef00")
    assert [c[0][:9] for c in info.value.candidates] == ["abcdef001", "abcdef002", "abcdef003"]
    assert show_message(store, "abcdef002")["title"] == "Brev 1"
    assert show_message(store, "ffffff")["title"] == "Alone"
    assert show(store, "abcdef00") is None  # the API's view: simply not found
    with pytest.raises(NotFound, match="start of 3") as refused:
        resend(store, "abcdef00", actor="test")
    assert len(refused.value.candidates) == 3
