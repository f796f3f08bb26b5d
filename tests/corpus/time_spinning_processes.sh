# expect: timed_out
# must-contain: spinners started
# Several busy subshells plus a parent that waits on them.
for i in 1 2 3 4 5 6 7 8; do
  ( while :; do :; done ) &
done
echo "spinners started"
wait
