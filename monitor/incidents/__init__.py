"""Alerts grouped into incidents (deduplication, grouping, quiet resolution) and their commands."""
