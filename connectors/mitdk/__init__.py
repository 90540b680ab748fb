"""mit.dk: a company mailbox read through mit.dk's viewing-client API (a gateway over NgDP)."""

from connectors.mitdk.connector import MitdkConnector
from connectors.mitdk.settings import MitdkSettings, Settings

__all__ = ["MitdkSettings", "MitdkConnector", "Settings"]
