"""Results files name the command that wrote them and the commit of the code that ran."""

from __future__ import annotations

import subprocess
from pathlib import Path

from facelab.provenance import provenance


def test_provenance_names_the_command_with_its_arguments_and_this_checkouts_commit():
    stamp = provenance("python scripts/x.py", ["--out", "a b.json"])
    assert stamp["generated_by"] == "python scripts/x.py --out a b.json"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True).stdout.strip() or None
    assert stamp["commit"] == head


def test_a_copy_without_git_history_names_its_commit_from_the_environment(tmp_path):
    """The code sent to another machine (no .git) stamps the commit it was told, not None."""
    import shutil
    import sys

    copy = tmp_path / "copy"
    shutil.copytree(Path(__file__).resolve().parents[1] / "facelab", copy / "facelab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = "from facelab.provenance import provenance; print(provenance('x', [])['commit'])"
    env = {"PATH": "/usr/bin:/bin", "GIT_CEILING_DIRECTORIES": str(tmp_path), "PYTHONPATH": str(copy)}
    told = subprocess.run([sys.executable, "-c", code], cwd=copy, capture_output=True, text=True, check=True,
                          env={**env, "FACELAB_COMMIT": "abc123"})
    untold = subprocess.run([sys.executable, "-c", code], cwd=copy, capture_output=True, text=True, check=True, env=env)
    assert told.stdout.strip() == "abc123" and untold.stdout.strip() == "None"
