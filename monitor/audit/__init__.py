"""The hash-chained audit log: writing the chain, verifying it, its commands."""
