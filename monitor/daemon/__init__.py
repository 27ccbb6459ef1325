"""``driftwarden run``.

The consumer loop, the service, the supervisor and its workers, ops HTTP,
systemd, logs.
"""
