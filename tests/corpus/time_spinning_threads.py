# expect: timed_out
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
