# expect: timed_out
# must-contain: threads spinning
# Many threads spinning at once: the run must still end at the wall-clock deadline.
import threading


def spin():
    while True:
        pass


for _ in range(32):
    threading.Thread(target=spin, daemon=True).start()
print("threads spinning", flush=True)
threading.Event().wait()
