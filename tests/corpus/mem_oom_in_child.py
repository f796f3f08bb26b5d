# expect: oom_killed
# expect-runsc: oom_killed|failed  (gVisor's OOM kill takes the whole sandbox, so nothing is printed; the
# engine sometimes reports it as a plain SIGKILL, exit 137)
# must-contain: child was killed by signal 9
# An allocation in a child process is OOM-killed; the parent survives and exits 0. The platform
# reports oom_killed whenever the engine saw an OOM kill in the container, even if the main
# process ends normally.
import subprocess
import sys

child = subprocess.run([sys.executable, "-c", "x = b'\\x01' * (512 << 20)"])
print(f"child was killed by signal {-child.returncode}", flush=True)
sys.exit(0)
