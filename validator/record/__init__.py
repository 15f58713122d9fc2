"""The typed run record (summary.json v1): declared, built, written and read here."""
