"""The command line: parse arguments, call the library, print, map outcomes to exit
codes (0 gate passed, 1 gate failed or inconclusive, 2 could not run).

One module per command group (run, quantize, report, init, recommend_discover,
diagnose_repair, slices), the options they share in options.py, the app in app.py.
"""

from validator.cli.app import app, main

__all__ = ["app", "main"]
