"""The NgDP test environment: a fake NgDP on 127.0.0.1 and connectors configured against it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.ngdp.connector import NgdpConnector, Settings
from sandbox.providers.ngdp import NgdpFake
from sandbox.testca import LocalCA

CVR = "12345674"
OTHER_CVR = "30624378"


@dataclass
class Ngdp:
    fake: NgdpFake
    base_url: str
    ca: LocalCA

    def settings(self, **overrides: Any) -> Settings:
        creds = self.fake.credentials()
        values: dict[str, Any] = {
            "base_url": self.base_url,
            "system_id": creds["system_id"],
            "api_token": creds["api_token"],
            "client_cert": Path(creds["client_cert"]),
            "client_key": Path(creds["client_key"]),
            "ca_file": self.ca.cert_path,
            "page_size": 10,
            "read_timeout": 5.0,
        }
        values.update(overrides)
        return Settings(**values)

    def connector(self, **overrides: Any) -> NgdpConnector:
        return NgdpConnector(self.settings(**overrides))

    def maker(self, **overrides: Any) -> Callable[[], NgdpConnector]:
        return lambda: self.connector(**overrides)
