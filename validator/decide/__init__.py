"""Decisions made from a finished run directory, after the verdict (no re-scoring)."""
