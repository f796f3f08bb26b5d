# expect: output_limit_exceeded
# expect-runsc: timed_out  (one-byte writes are too slow under gVisor to reach the cap)
# Many tiny unbuffered writes: the cap must count them all, not only large frames.
import os

while True:
    os.write(1, b"x")
