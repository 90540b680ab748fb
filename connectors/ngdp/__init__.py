"""Digital Post (NgDP) recipient-system connector and its fake provider (`sandbox.providers.ngdp`)."""

from connectors.ngdp.connector import NgdpConnector, NgdpSettings, Settings

__all__ = ["NgdpConnector", "NgdpSettings", "Settings"]
