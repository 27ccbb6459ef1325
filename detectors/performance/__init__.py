"""Realized performance from labels joined to predictions (signals ``performance:<metric>``)."""
