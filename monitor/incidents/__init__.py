"""Alerts grouped into incidents by problem, signal states, and their commands."""
