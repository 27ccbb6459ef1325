"""``driftwarden replay``.

The pipeline over a file or a Kafka time range, and comparing two stores.
"""
