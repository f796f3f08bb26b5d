# expect: completed
# runtimes: runc  (gVisor emulates these calls inside its own kernel, which is the boundary there)
# must-contain: all writes outside the scratch space were refused
# must-not-contain: LEAK
# Every place outside /tmp (and the tiny /dev/shm) must refuse writes, including the script's
# own files in /code.
import os

targets = [
    "/evil", "/code/evil", "/code/main.py", "/code/stdin", "/etc/evil", "/etc/passwd",
    "/usr/evil", "/usr/bin/python3", "/usr/lib/evil", "/bin/evil", "/root/evil", "/home/evil",
    "/var/evil", "/var/tmp/evil", "/run/evil", "/opt/evil", "/proc/sys/kernel/hostname",
    "/sys/fs/cgroup/evil", "/proc/sysrq-trigger", "/dev/evil",
]
for path in targets:
    try:
        with open(path, "ab") as f:
            f.write(b"x")
    except OSError:
        continue
    print(f"LEAK: wrote {path}")
for call, args in [
    (os.mkdir, ("/evil_dir",)),
    (os.mkdir, ("/code/evil_dir",)),
    (os.chmod, ("/code/main.py", 0o777)),
    (os.chmod, ("/code", 0o777)),
    (os.unlink, ("/code/main.py",)),
    (os.rename, ("/code/main.py", "/code/moved.py")),
    (os.symlink, ("/tmp", "/code/link")),
    (os.mknod, ("/tmp/devnode", 0o600 | 0o020000, os.makedev(1, 3))),
    (os.chown, ("/tmp", 0, 0)),
]:
    try:
        call(*args)
    except OSError:
        continue
    print(f"LEAK: {call.__name__}{args} succeeded")
with open("/tmp/scratch", "w") as f:
    f.write("scratch works")
print("all writes outside the scratch space were refused")
