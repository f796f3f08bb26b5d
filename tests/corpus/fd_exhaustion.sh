# expect: completed
# must-contain: nofile=256
# must-contain: fd limit reached
# must-not-contain: LEAK
echo "nofile=$(ulimit -n)"
ulimit -n 100000 2>/dev/null && echo "LEAK: raised nofile"
n=0
while exec {fd}</dev/null 2>/dev/null; do
  n=$((n+1))
  if [ "$n" -gt 1000 ]; then echo "LEAK: $n descriptors"; break; fi
done
echo "fd limit reached after $n"
