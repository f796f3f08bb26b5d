# expect: oom_killed
# expect-runsc: oom_killed|failed  (gVisor's OOM kill takes the whole sandbox, so nothing is printed; the
# engine sometimes reports it as a plain SIGKILL, exit 137)
# must-contain: child exited with 137
python3 -c 'x = b"\x01" * (512 << 20)'
echo "child exited with $?"
exit 0
