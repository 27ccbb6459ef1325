"""Per-caller tests on the ``client`` field of events (kind ``client``), each a
:class:`ClientWindowTest` reporting :class:`ClientOutcome` values.

:mod:`detectors.client.watch` runs them for a model's suite."""

from detectors.client.base import ClientOutcome, ClientWindowTest
from detectors.client.boundary import ClientBoundary
from detectors.client.inputs import ClientInputs
from detectors.client.volume import ClientVolume

__all__ = ["ClientBoundary", "ClientInputs", "ClientOutcome", "ClientVolume", "ClientWindowTest"]
