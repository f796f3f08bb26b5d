"""Twenty hostile executions at once, across three real worker processes, next to benign ones."""

from __future__ import annotations

import time

from executions.models import Execution
from executions.sandbox.runner import docker_api, own_sandboxes
from tests.conftest import wait_for_status, waiting_for_code

HOSTILE = [
    ("python", "while True: pass"),
    ("bash", ":(){ :|:& }; while true; do :; done"),
    ("python", "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass"),
    ("python", "x = []\nwhile True: x.append(bytearray(10**6))"),
    ("bash", "while true; do echo flood flood flood; done"),
    ("python", "import threading\nfor _ in range(10000):\n    threading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()"),
    ("bash", "trap '' TERM; while :; do :; done"),
]
BENIGN = ("python", "print(sum(range(10)))")


def test_benign_executions_complete_among_hostile_ones(alice, three_workers):
    hostile = [alice.submit(code, language) for language, code in (HOSTILE * 3)[:20]]
    benign = []
    for _ in range(5):
        benign.append(alice.submit(BENIGN[1], BENIGN[0]))
    terminal = set(Execution.TERMINAL_STATUSES)
    for task_id in benign:
        execution = wait_for_status(task_id, terminal, timeout=180)
        assert (execution.status, execution.stdout) == ("completed", "45\n")
    for task_id in hostile:
        execution = wait_for_status(task_id, terminal, timeout=180)
        assert execution.status in {"timed_out", "oom_killed", "output_limit_exceeded", "failed"}, execution.status
    # The engine still answers promptly, and every sandbox is gone.
    probe = time.monotonic()
    docker_api().ping()
    assert time.monotonic() - probe < 5
    # Every sandbox that ran an execution goes right after its job; each worker keeps one made
    # ahead, which has received nothing.
    deadline = time.monotonic() + 10
    while (used := [c for c in own_sandboxes(docker_api()) if not waiting_for_code(c)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert used == []
    assert len(own_sandboxes(docker_api())) <= len(three_workers)
    assert all(worker.poll() is None for worker in three_workers)
