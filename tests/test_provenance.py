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
