# expect: output_limit_exceeded
# One 32 MiB write with no newline at all, then the script waits for the flush to be drained.
import os
import sys

data = b"x" * (32 << 20)
view = memoryview(data)
while view:
    view = view[os.write(1, view):]
sys.exit(0)
