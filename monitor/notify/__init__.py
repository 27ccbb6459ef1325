"""Notifications.

What to send (policy), the outbox, delivery, payloads per format, signing,
targets.
"""
