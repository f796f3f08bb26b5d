# expect: output_limit_exceeded
# expect-runsc: timed_out|output_limit_exceeded  (under gVisor one-byte writes reach the cap only just in time, or not)
# Many tiny unbuffered writes: the cap must count them all, not only large frames.
import os

while True:
    os.write(1, b"x")
