"""Decisions taken after the verdict, from a run directory (no re-scoring)."""
