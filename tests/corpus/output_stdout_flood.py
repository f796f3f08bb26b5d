# expect: output_limit_exceeded
# Writes as fast as it can, forever.
import sys

block = "A" * 65536
while True:
    sys.stdout.write(block)
