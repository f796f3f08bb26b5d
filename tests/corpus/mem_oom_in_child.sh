# expect: oom_killed
# must-contain: child exited with 137
python3 -c 'x = b"\x01" * (512 << 20)'
echo "child exited with $?"
exit 0
