"""Every bad input of docs/bad-inputs.md through the CLI, timed (issue 22).

Builds each case with the builders of tests/test_bad_inputs.py in a fresh folder, runs
``python -m validator`` on it and records the exit code, the wall time and the message.
The issue's bar: no small bad input runs over 60 s, none says "internal error", and
every one exits 2. Exits 1 when a case misses the bar.

python benchmarks/bench_bad_inputs.py [--case NAME ...] [--out benchmarks/results-bad-inputs.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from test_bad_inputs import BUILDERS, CASES, Setup  # noqa: E402
from conftest import run_cli  # noqa: E402

LIMIT_S = 60


def run_case(case: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        built = BUILDERS[case](Setup(Path(folder)))
        args, env = built if isinstance(built, tuple) else (built, None)
        start = time.perf_counter()
        result = run_cli(*args, env=env, timeout=10 * LIMIT_S)
        seconds = time.perf_counter() - start
        message = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    return {"case": case, "exit_code": result.returncode, "seconds": round(seconds, 2),
            "message": message.replace(folder, "<tmp>")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", help="only these cases")
    parser.add_argument("--out", type=Path, default=HERE / "results-bad-inputs.json")
    options = parser.parse_args()
    results = [run_case(case) for case in options.case or sorted(CASES)]
    missed = [r for r in results if r["exit_code"] != 2 or r["seconds"] > LIMIT_S
              or "internal error" in r["message"]]
    options.out.write_text(json.dumps({"limit_s": LIMIT_S, "cases": results,
                                       "slowest_s": max(r["seconds"] for r in results),
                                       "missed": [r["case"] for r in missed]}, indent=2))
    print(f"{len(results)} cases, slowest {max(r['seconds'] for r in results)} s, "
          f"{len(missed)} missed the bar: {', '.join(r['case'] for r in missed) or 'none'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
