"""Driftwarden's service: ingest, pipeline, store, audit, incidents, silences, notify,
daemon, replay, report and the command line (README "Layout")."""

__version__ = "0.1.0"
