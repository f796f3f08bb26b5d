# expect: failed
# must-contain: about to die
# Dies by its own SIGKILL: exit 137 without an OOM must be failed, not oom_killed.
import os
import signal

print("about to die", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
