"""The typed run record (summary.json v1): declared, built and read here."""
