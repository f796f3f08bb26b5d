# expect: output_limit_exceeded
# expect-runsc: timed_out|output_limit_exceeded  (under gVisor's ptrace platform each one-byte write is a
# trapped system call: on a busy host the cap is reached just in time, or not)
# Many tiny unbuffered writes: the cap must count them all, not only large frames.
import os

while True:
    os.write(1, b"x")
