"""Silences: muting notifications of matching incidents for a while."""
