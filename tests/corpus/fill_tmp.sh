# expect: failed
# must-contain: No space left on device
# must-contain: second file stopped
# must-not-contain: LEAK
# Two 10 MiB files in a 16 MiB scratch space: the second one hits "disk full" as a plain error.
dd if=/dev/zero of=/tmp/first bs=1M count=10 status=none || echo "LEAK: the first file failed"
if dd if=/dev/zero of=/tmp/second bs=1M count=10 status=none; then
  echo "LEAK: wrote 20 MiB"
  exit 0
fi
echo "second file stopped"
exit 1
