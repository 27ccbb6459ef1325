"""The one exception root of the service: a problem a user can fix, said in one line."""

from __future__ import annotations


class DriftwardenError(Exception):
    """A user-facing error: the CLI prints it as one line and exits 2."""


class ConfigError(DriftwardenError):
    """A config file is missing, unreadable or invalid; the message names file and key."""
