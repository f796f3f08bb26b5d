# expect: completed
# must-contain: parent exits
# must-not-contain: LATE
# The classic double fork: a daemon in its own session, reparented to PID 1, writing later.
import os
import sys
import time

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(1)
        for _ in range(50):
            os.write(1, b"LATE from daemon\n")
            time.sleep(0.1)
    os._exit(0)
print("parent exits", flush=True)
sys.exit(0)
