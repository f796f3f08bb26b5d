# expect: output_limit_exceeded
# Many tiny unbuffered writes: the cap must count them all, not only large frames.
import os

while True:
    os.write(1, b"x")
