"""Where a results file came from: the command that wrote it and the commit of the code that ran."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]


def provenance(command: str, argv: Sequence[str] | None = None) -> dict[str, str | None]:
    """``{"generated_by": command and its arguments, "commit": HEAD of this checkout or None}``.

    Call it before the work, so that a commit made while a long run goes on is not recorded as the
    code that produced it. ``argv`` defaults to this process's arguments. A copy of the code without
    its git history (sent to a GPU machine, say) names its commit in ``FACELAB_COMMIT``.
    """
    arguments = sys.argv[1:] if argv is None else argv
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"generated_by": " ".join([command, *arguments]), "commit": commit or os.environ.get("FACELAB_COMMIT")}
