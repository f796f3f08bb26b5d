# expect: oom_killed
# must-not-contain: LEAK
# expect-runsc: oom_killed|failed
# (Under gVisor the engine sometimes reports the OOM-killed sandbox as a plain SIGKILL, exit 137.)
# A shell variable that doubles until the memory limit kills the shell.
s=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
for i in $(seq 1 40); do
  s="$s$s"
done
echo "LEAK: ${#s} bytes held"
