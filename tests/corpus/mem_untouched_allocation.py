# expect: completed
# must-contain: mmap of 8 GiB refused or untouched
# must-not-contain: LEAK
# Reserving far more address space than the limit is harmless until the pages are touched;
# writing a handful of them must still work, and the run must end normally.
import mmap

try:
    area = mmap.mmap(-1, 8 << 30, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
except OSError as exc:
    print(f"mmap of 8 GiB refused or untouched ({exc.strerror})")
else:
    for offset in range(0, 16 << 20, 4096):
        area[offset] = 1
    print("mmap of 8 GiB refused or untouched (16 MiB written)")
