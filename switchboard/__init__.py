"""Switchboard: the composition root that wires settings, logging, store, engine and API.

The public surface of this package is small on purpose; the CLI (``switchboard.cli``)
is the entry point most users see.
"""

from switchboard.errors import ConfigurationError, SwitchboardError
from switchboard.settings import Settings, get_settings

__all__ = ["ConfigurationError", "Settings", "SwitchboardError", "get_settings"]
__version__ = "0.1.0"
