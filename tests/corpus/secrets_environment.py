# expect: completed
# must-contain: environment dumped
# must-not-contain: SECRET_KEY
# must-not-contain: REDIS_URL
# must-not-contain: DATABASE_URL
# must-not-contain: DJANGO_SETTINGS_MODULE
# must-not-contain: PASSWORD
# Dumps every environment it can read: its own, PID 1's, and every other process's, plus the
# command lines. None of the worker's settings or secrets may be there.
import os

print("own:", sorted(os.environ.items()))
for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
    for name in ("environ", "cmdline"):
        try:
            with open(f"/proc/{pid}/{name}", "rb") as f:
                print(f"/proc/{pid}/{name}:", f.read().replace(b"\0", b" ").decode(errors="replace"))
        except OSError as exc:
            print(f"/proc/{pid}/{name}: {exc.strerror}")
print("environment dumped")
