# expect: timed_out
# expect-runsc: oom_killed|failed  (gVisor's host threads use the memory before the pids run out; the engine
# sometimes reports that OOM-killed sandbox as a plain SIGKILL, exit 137)
# must-contain: fork refused
# Forks without end; every process keeps forking. The pids limit must stop it, and only the
# deadline ends it.
import os

reported = False
while True:
    try:
        os.fork()
    except OSError as exc:
        if not reported:
            reported = True
            print(f"fork refused: {exc.strerror}", flush=True)
