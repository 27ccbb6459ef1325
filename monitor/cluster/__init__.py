"""Cluster mode: daemons of one consumer group on several machines, state on Kafka itself.

Each checkpoint of a worker is one Kafka transaction (``checkpoint``): its
alerts and quarantined records go to their topics, the per-model state it
changed to a compacted changelog topic on the partition the model's records
come from (``changelog``), and the consumed offsets to the group, all
committed together; the local SQLite file is then a cache. A worker given a
partition restores its models from the changelog before it reads the
partition (``restore``), then follows the changelog (``follow``) for the
requests of `baseline reset` and `baseline set`, which the commands write
there (``request_command``) and the worker carries out once (``requests``).
``settings`` holds ``[cluster]``.
"""
