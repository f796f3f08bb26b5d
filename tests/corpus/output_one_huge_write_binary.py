# expect: output_limit_exceeded
# One 16 MiB write of every byte value through the binary stream, one on stderr, then exit 0.
import sys

sys.stderr.buffer.write(b"\xff\x00" * 1024)
sys.stdout.buffer.write(bytes(range(256)) * (64 << 10))
sys.exit(0)
