# expect: completed
# runtimes: runc  (gVisor emulates these calls inside its own kernel, which is the boundary there)
# must-contain: uid=65534 gid=65534 groups=[65534]
# must-contain: all capability sets are empty
# must-contain: NoNewPrivs: 1
# must-contain: seccomp filter on
# must-not-contain: LEAK
# Who the script is, and what the kernel lets it do.
import os

print(f"uid={os.getuid()} gid={os.getgid()} groups={os.getgroups() or [os.getgid()]}")
if 0 in (os.getuid(), os.geteuid(), os.getgid(), os.getegid()) or 0 in os.getgroups():
    print("LEAK: running with a root id")
status = dict(
    line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line
)
capabilities = {name: status[name].strip() for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
if set(capabilities.values()) == {"0000000000000000"}:
    print("all capability sets are empty")
else:
    print(f"LEAK: capabilities {capabilities}")
print(f"NoNewPrivs: {status['NoNewPrivs'].strip()}")
print("seccomp filter on" if status["Seccomp"].strip() == "2" else f"LEAK: Seccomp {status['Seccomp']}")
for pid in (p for p in os.listdir("/proc") if p.isdigit()):
    try:
        uid_line = next(l for l in open(f"/proc/{pid}/status") if l.startswith("Uid:"))
    except (OSError, StopIteration):
        continue
    if "0" in uid_line.split()[1:]:
        print(f"LEAK: process {pid} runs as root: {uid_line.strip()}")
