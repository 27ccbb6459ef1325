"""``driftwarden demo``: broker, daemon, receiver and simulated traffic, end to end."""
