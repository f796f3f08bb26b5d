# expect: oom_killed
# must-not-contain: LEAK
# A shell variable that doubles until the memory limit kills the shell.
s=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
for i in $(seq 1 40); do
  s="$s$s"
done
echo "LEAK: ${#s} bytes held"
