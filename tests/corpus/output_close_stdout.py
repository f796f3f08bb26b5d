# expect: completed
# must-contain: before closing
# must-not-contain: LEAK
# Closes both output streams early and goes on working; the run must still end normally.
import os
import time

print("before closing", flush=True)
os.close(1)
os.close(2)
total = sum(range(10**6))
time.sleep(0.5)
try:
    os.write(1, b"LEAK: wrote to a closed stdout\n")
except OSError:
    pass
