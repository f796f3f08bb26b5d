# expect: output_limit_exceeded
# A child goes on writing, in one huge write, while its parent exits 0: what reached the cap by then
# must still count as over it.
import os
import sys
import time

if os.fork() == 0:
    os.write(1, b"c" * (32 << 20))
    os._exit(0)
time.sleep(0.5)
sys.exit(0)
