# expect: timed_out
# expect-runsc: timed_out|failed  (with Docker's seccomp profile applied (--oci-seccomp) this gVisor answers
# clone3 with EPERM, not ENOSYS, so no thread starts: the script fails at once)
# must-contain: starting spinners
# Many threads spinning at once: the run must still end at the wall-clock deadline.
import threading


def spin():
    while True:
        pass


print("starting spinners", flush=True)
for _ in range(32):
    threading.Thread(target=spin, daemon=True).start()
threading.Event().wait()
