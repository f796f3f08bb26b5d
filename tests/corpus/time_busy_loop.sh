# expect: timed_out
# A tight shell loop with no external command: nothing to wait on, nothing to interrupt.
while :; do :; done
