# expect: timed_out
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
