# expect: oom_killed
# must-not-contain: LEAK
# One allocation of 1 GiB, written in full at once.
data = b"\x01" * (1024 * 1024 * 1024)
print(f"LEAK: allocated {len(data)} bytes")
