"""The default run needs no network: it runs inside a network namespace with none."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.e2e


def network_namespace_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not network_namespace_available(),
                    reason="needs `unshare -n` (root or user namespaces)")
def test_default_run_works_with_networking_disabled(tmp_path):
    probe = subprocess.run(["unshare", "-n", sys.executable, "-c",
                            "import socket; socket.create_connection(('pypi.org', 443), 3)"],
                           capture_output=True, text=True)
    assert probe.returncode != 0  # the namespace really has no network
    out = tmp_path / "offline"
    result = subprocess.run(["unshare", "-n", sys.executable, "-m", "validator", "run",
                             "--out", str(out), "--quiet"], capture_output=True, text=True,
                            cwd=ROOT, timeout=900)
    assert result.returncode in (0, 1), result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["scorers"]) == 4 and summary["sample"]["rows"] >= 1500
