# expect: completed
# must-contain: link tricks done
# must-not-contain: LEAK
# must-not-contain: root:$
# must-not-contain: SECRET_KEY
# Symlinks and hard links in /tmp aimed at sensitive files and at the host: they may only ever
# resolve inside the container, and must not open anything the sandbox user could not read.
import os

links = {
    "/tmp/shadow": "/etc/shadow",
    "/tmp/gshadow": "/etc/gshadow",
    "/tmp/docker": "/var/run/docker.sock",
    "/tmp/host_root": "/proc/1/root",
    "/tmp/host_cwd": "/proc/1/cwd",
    "/tmp/project": "/work/main/sandbox_project/settings.py",
    "/tmp/hostfs": "/host",
    "/tmp/up": "../../../../../../../../../../etc/shadow",
}
for link, target in links.items():
    os.symlink(target, link)
for link in links:
    try:
        with open(link, "rb") as f:
            data = f.read(4096)
    except OSError:
        continue
    if b"root:$" in data or b"SECRET" in data:
        print(f"LEAK: read a secret through {link}")
for target in ("/etc/shadow", "/etc/passwd", "/usr/bin/python3", "/code/main.py"):
    try:
        os.link(target, "/tmp/hard")
    except OSError:
        continue
    os.unlink("/tmp/hard")
    print(f"LEAK: hard link to {target}")
# Whatever /proc/1/root points at must be this container: the host's files are not there.
for host_path in ("/work", "/var/lib/docker", "/root/.docker", "/etc/docker"):
    for prefix in ("", "/proc/1/root", "/tmp/host_root"):
        if os.path.exists(prefix + host_path):
            print(f"LEAK: {prefix + host_path} exists")
print("link tricks done")
