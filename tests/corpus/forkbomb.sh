# expect: timed_out
# expect-runsc: failed  (gVisor's sentry dies when its host threads hit the pids limit: exit 2)
# must-contain: Resource temporarily unavailable
# The classic bash fork bomb, then the script waits so that the run lasts until the deadline.
:(){ :|:& };:
sleep 30
