# expect: completed
# expect-runsc: completed|oom_killed|timed_out|failed  (each thread costs gVisor host memory and time; at the memory limit gVisor's OOM kill takes the whole sandbox: exit 137, seen in a loaded CI run)
# must-contain: thread limit reached
# must-not-contain: LEAK
import threading

stop = threading.Event()
started = 0
try:
    for _ in range(5000):
        threading.Thread(target=stop.wait, daemon=True).start()
        started += 1
except RuntimeError as exc:
    print(f"thread limit reached after {started}: {exc}", flush=True)
else:
    print(f"LEAK: started {started} threads")
stop.set()
