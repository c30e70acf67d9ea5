"""Where the project's read-only shared material is (the conformance corpus,
the benchmark workloads): ``NOETL_SHARED_DIR``, else the ``shared`` folder
beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NOETL_SHARED_DIR") or REPO.parent / "shared")
CONFORMANCE_PLAYBOOKS = SHARED / "conformance" / "playbooks"
