"""NgDP settings: validated, frozen, unknown keys refused; the connector satisfies the contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest

from connectors.base import Connector
from connectors.ngdp import NgdpConnector, Settings

BASE: dict[str, Any] = {"system_id": "s", "api_token": "t", "client_cert": Path("c.pem"),
                        "client_key": Path("k.pem")}


def test_defaults_point_at_production_and_all_cvrs() -> None:
    settings = Settings(**BASE)
    assert settings.base_url == "https://api.digitalpost.dk/apis/v1"
    assert settings.cvrs == "all" and settings.business_receipt is False


@pytest.mark.parametrize("bad", [
    {"cvrs": ["1234567"]}, {"cvrs": []}, {"base_url": "http://api.digitalpost.dk/apis/v1"},
    {"page_size": 0}, {"page_size": 5000}, {"read_timeout": 0}, {"colour": "blue"},
])
def test_invalid_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        Settings(**{**BASE, **bad})


def test_settings_are_frozen_and_cvrs_become_a_tuple() -> None:
    settings = Settings(**BASE, cvrs=["12345674", "30624378"])
    assert settings.cvrs == ("12345674", "30624378")
    with pytest.raises(pydantic.ValidationError):
        settings.page_size = 5  # type: ignore[misc]


def test_connector_satisfies_the_protocol() -> None:
    connector = NgdpConnector(Settings(**BASE))
    assert isinstance(connector, Connector)
    assert NgdpConnector.name == "ngdp" and NgdpConnector.Settings is Settings
