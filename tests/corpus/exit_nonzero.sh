# expect: failed
# must-contain: partial output
# A plain failure, for contrast: output so far is kept and the status says failed.
echo "partial output"
exit 42
