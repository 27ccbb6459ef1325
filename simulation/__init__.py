"""Simulated traffic, the scorecard and the demo: tools around the service, not part of it."""
