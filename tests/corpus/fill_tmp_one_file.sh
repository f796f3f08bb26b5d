# expect: failed
# must-contain: dd stopped with status 153
# must-not-contain: LEAK
# One file past the file size limit (equal to the scratch space): SIGXFSZ stops the writer.
dd if=/dev/zero of=/tmp/big bs=1M count=64 status=none
status=$?
if [ "$status" -eq 0 ]; then
  echo "LEAK: wrote 64 MiB in one file"
  exit 0
fi
echo "dd stopped with status $status"
exit 1
