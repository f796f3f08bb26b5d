# expect: timed_out
# expect-runsc: oom_killed  (gVisor's host threads use the memory before the pids run out)
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
