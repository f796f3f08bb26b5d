# expect: output_limit_exceeded
# The same flood on stderr, with a little on stdout first.
import os

print("before the flood", flush=True)
block = b"E" * 65536
while True:
    os.write(2, block)
