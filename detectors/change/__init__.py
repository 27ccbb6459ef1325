"""Sequential change detectors on block means of a numeric stream (kind ``change``),
each a :class:`BlockChangeDetector` reporting :class:`ChangeEvent` values."""

from detectors.change.adwin import ADWIN
from detectors.change.base import BlockChangeDetector, ChangeEvent
from detectors.change.cusum import CUSUM
from detectors.change.page_hinkley import PageHinkley

__all__ = ["ADWIN", "CUSUM", "BlockChangeDetector", "ChangeEvent", "PageHinkley"]
