"""Getting events in.

The hostile-input parser, columns for the detectors, the quarantine commands.
"""
