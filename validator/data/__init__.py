"""The data stage: the sample (pool and rated rows), its expectations, slices and the
rating design."""
