"""torch's OpenMP threads wait briefly before they sleep, so facelab processes can share the cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO

SHOW = "import os, facelab; print(os.environ.get('GOMP_SPINCOUNT'))"


def _spin(**env) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    done = subprocess.run([sys.executable, "-c", SHOW], capture_output=True, text=True, check=True,
                          env={**clean, **env})
    return done.stdout.strip()


def test_importing_facelab_sets_a_short_spin_unless_the_user_chose_a_wait_policy():
    from facelab.openmp import SPIN_COUNT

    assert _spin() == SPIN_COUNT
    assert _spin(GOMP_SPINCOUNT="50000") == "50000"
    assert _spin(OMP_WAIT_POLICY="ACTIVE") == "None"


def test_the_shared_cores_benchmark_times_two_processes_against_one(tmp_path):
    out = tmp_path / "shared.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "shared_cores", "--quick", "--sizes", "120", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    result, = json.loads(out.read_text())["results"]
    assert result["name"] == "neutralise.shared_cores" and result["params"]["processes"] == 2
    ours, reference = result["ours"], result["reference"]
    assert result["value"] == ours["shared_ms"] / ours["alone_ms"]
    assert min(ours.values()) > 0 and min(reference.values()) > 0
