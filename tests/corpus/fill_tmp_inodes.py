# expect: completed
# expect-runsc: timed_out|oom_killed|failed  (slow under gVisor's ptrace platform, and its tmpfs costs host
# memory; the engine sometimes reports that OOM kill as a plain SIGKILL, exit 137)
# must-contain: inodes exhausted: ENOSPC
# must-not-contain: LEAK
# Empty files cost no data blocks but each costs kernel memory; the inode limit must stop them.
import errno
import os

made = 0
try:
    for i in range(100000):
        os.close(os.open(f"/tmp/e{i}", os.O_CREAT | os.O_WRONLY, 0o600))
        made += 1
except OSError as exc:
    print(f"inodes exhausted: {errno.errorcode[exc.errno]} after {made} files", flush=True)
if made > 8192:
    print(f"LEAK: {made} files in /tmp")
