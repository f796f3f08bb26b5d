# expect: timed_out
# must-not-contain: LEAK
# Idle, not busy: a CPU quota alone would never end this one.
import time

print("sleeping", flush=True)
time.sleep(10**6)
print("LEAK: woke up")
