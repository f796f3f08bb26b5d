# expect: completed
# expect-runsc: failed  (under gVisor kill -9 -1 reaches the init too: exit 137)
# must-contain: background ended with 137
# must-contain: still here
# Signals every process it can reach, PID 1 included: only its own processes may die, the
# init must survive, and the run must end normally.
sleep 30 &
background=$!
kill -9 1
kill -9 -1
wait "$background"
echo "background ended with $?"
echo "still here"
