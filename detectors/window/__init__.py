"""Windowed two-sample tests: each full event-count window of a signal against
the signal's reference (kind ``window``)."""
