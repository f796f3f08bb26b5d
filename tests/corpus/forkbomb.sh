# expect: timed_out
# must-contain: Resource temporarily unavailable
# The classic bash fork bomb, then the script waits so that the run lasts until the deadline.
:(){ :|:& };:
sleep 30
