"""Ctrl-C on ``noetl run`` against a server: the run is cancelled on the
server and its task on the worker stops, not left running unseen."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

from noetl_site.devstack import REPO
from tests.distributed.conftest import Driver

PLAYBOOK = REPO / "tests" / "playbooks" / "long_sleep.yaml"


def test_ctrl_c_cancels_the_run_on_the_server(stack: Driver) -> None:
    run = subprocess.Popen(
        [sys.executable, "-m", "noetl_site.cli", "run", str(PLAYBOOK)],
        env=stack.stack.client_env(), cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = b""
    while "\u25b6 start".encode() not in seen:  # the task started: it sleeps 30 s
        ready, _, _ = select.select([run.stderr], [], [], 60)
        assert ready, f"the run never started: {seen!r}"
        seen += os.read(run.stderr.fileno(), 4096)
    os.killpg(run.pid, signal.SIGINT)
    out, err = (part.decode() for part in run.communicate(timeout=25))
    assert run.returncode == 1, out + err
    assert "cancelled" in out and "interrupted from the keyboard" in out
    assert "Traceback" not in err
    execution_id = out.split()[1].rstrip(":")
    assert stack.statuses([execution_id]) == {execution_id: "cancelled"}
