# expect: completed
# No output at all, on either stream.
import time

time.sleep(0.2)
