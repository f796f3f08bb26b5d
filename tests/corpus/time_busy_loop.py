# expect: timed_out
# A tight loop that never yields: only the platform's own deadline ends it.
while True:
    pass
