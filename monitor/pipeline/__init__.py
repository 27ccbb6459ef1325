"""The per-model pipeline: event clock, caps and limits, baseline resets, the checkpoint."""
