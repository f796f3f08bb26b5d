# expect: oom_killed
# expect-runsc: oom_killed  (gVisor's OOM kill takes the whole sandbox, so nothing is printed)
# must-contain: child exited with 137
python3 -c 'x = b"\x01" * (512 << 20)'
echo "child exited with $?"
exit 0
