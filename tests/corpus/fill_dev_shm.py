# expect: completed
# must-contain: /dev/shm full: ENOSPC
# must-not-contain: LEAK
# /dev/shm is a tmpfs that a read-only root does not cover; it must be small enough to fill
# cleanly, long before the memory limit.
import errno

written = 0
try:
    with open("/dev/shm/fill", "wb") as f:
        while True:
            f.write(b"\x01" * 65536)
            f.flush()
            written += 65536
except OSError as exc:
    print(f"/dev/shm full: {errno.errorcode[exc.errno]} after {written >> 20} MiB", flush=True)
if written > 32 << 20:
    print("LEAK: /dev/shm took more than 32 MiB")
