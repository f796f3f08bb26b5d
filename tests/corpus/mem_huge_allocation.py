# expect: oom_killed
# must-not-contain: LEAK
# expect-runsc: oom_killed|failed
# (Under gVisor the engine sometimes reports the OOM-killed sandbox as a plain SIGKILL, exit 137.)
# One allocation of 1 GiB, written in full at once.
data = b"\x01" * (1024 * 1024 * 1024)
print(f"LEAK: allocated {len(data)} bytes")
