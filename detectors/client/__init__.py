"""Per-caller tests on the ``client`` field of events (kind ``client``)."""
