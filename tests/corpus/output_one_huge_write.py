# expect: output_limit_exceeded
# One 8 MiB write through Python's text stream (held twice, as str and bytes, within the memory
# limit), then exit 0. Under gVisor such a write once returned short and Python dropped the rest:
# the run ended `completed` with exactly the cap, not truncated.
import sys

sys.stdout.write("x" * (8 << 20))
sys.exit(0)
