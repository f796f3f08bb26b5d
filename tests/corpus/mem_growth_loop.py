# expect: oom_killed
# must-not-contain: LEAK
# expect-runsc: oom_killed|failed
# (Under gVisor the engine sometimes reports the OOM-killed sandbox as a plain SIGKILL, exit 137.)
# Grows by 1 MiB at a time, touching every page, far past the 64 MiB limit.
chunks = []
for i in range(1024):
    chunks.append(bytearray(b"\x01") * (1024 * 1024))
print(f"LEAK: held {len(chunks)} MiB")
