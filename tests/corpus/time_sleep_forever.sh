# expect: timed_out
# must-not-contain: LEAK
echo sleeping
sleep infinity
echo "LEAK: woke up"
