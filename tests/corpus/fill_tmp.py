# expect: completed
# must-contain: /tmp full: ENOSPC
# must-not-contain: LEAK
# Fills the scratch space with 1 MiB files until the disk is full: a clean error, not a kill.
import errno
import os

written = 0
try:
    for i in range(1000):
        with open(f"/tmp/fill{i}", "wb") as f:
            f.write(b"\x01" * (1 << 20))
        written += 1 << 20
except OSError as exc:
    print(f"/tmp full: {errno.errorcode[exc.errno]} after {written >> 20} MiB", flush=True)
if written > 16 << 20:
    print("LEAK: /tmp took more than 16 MiB")
