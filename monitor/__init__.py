"""Driftwarden's service: events, config, sources, pipeline, store, CLI."""

__version__ = "0.1.0"
