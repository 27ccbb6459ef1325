"""Sequential change detectors on block means of a numeric stream (kind ``change``)."""
