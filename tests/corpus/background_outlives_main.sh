# expect: completed
# must-contain: main done
# must-not-contain: LATE
# A background job that writes after the main script has exited must never be seen, and
# must not keep the run (or the container) alive.
( sleep 1; while true; do echo "LATE from background"; sleep 0.2; done ) &
nohup sh -c 'sleep 1; echo LATE from nohup' >/dev/stdout 2>&1 &
setsid sh -c 'sleep 1; echo LATE from setsid' &
disown -a
echo "main done"
