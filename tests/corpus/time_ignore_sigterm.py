# expect: timed_out
# must-contain: signals ignored
# Ignores every catchable signal a polite stop would send, then keeps running.
import signal
import time

for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGPIPE"):
    signal.signal(getattr(signal, name), signal.SIG_IGN)
print("signals ignored", flush=True)
while True:
    time.sleep(0.5)
