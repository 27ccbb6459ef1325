"""Sequential evidence per feature (kind ``sequential``): statistics of
consecutive event blocks against the reference, accumulated by CUSUMs, so a
small shift that persists is found without waiting for a window to hold
enough evidence on its own."""

from detectors.sequential.evidence import FeatureEvidence

__all__ = ["FeatureEvidence"]
