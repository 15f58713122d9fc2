"""Serving speed: each scorer measured alone, capacity under an SLO, cost of mixes."""
