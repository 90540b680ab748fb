"""e-Boks: a company mailbox read through a delegate's access to the e-Boks mobile XML API."""

from connectors.eboks.connector import EboksConnector
from connectors.eboks.settings import EboksSettings, Settings

__all__ = ["EboksSettings", "EboksConnector", "Settings"]
