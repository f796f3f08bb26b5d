# expect: timed_out
# must-contain: traps set
# Traps the polite signals and keeps a child busy, so a SIGTERM to either does nothing.
trap '' TERM INT HUP QUIT USR1 USR2
echo "traps set"
while true; do
  sleep 0.5
done
