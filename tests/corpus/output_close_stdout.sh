# expect: completed
# must-contain: before closing
# must-not-contain: LEAK
echo "before closing"
exec 1>&- 2>&-
echo "LEAK: after closing"
sleep 0.5
exit 0
