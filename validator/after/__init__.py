"""Decisions taken after the verdict, from a run directory read through
``validator.record.run_dir.RunDir`` (no re-scoring)."""
