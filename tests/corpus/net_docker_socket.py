# expect: completed
# must-contain: engine sockets absent
# must-not-contain: LEAK
# The container engine's sockets must not be reachable from inside: no bind mount, no TCP.
import os
import socket

for path in ("/var/run/docker.sock", "/run/docker.sock", "/var/run/docker/containerd/containerd.sock",
             "/run/containerd/containerd.sock", "/var/run/containerd/containerd.sock",
             "/run/podman/podman.sock", "/var/run/crio/crio.sock"):
    if os.path.exists(path):
        print(f"LEAK: {path} exists")
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(0.5)
            sock.connect(path)
            sock.sendall(b"GET /version HTTP/1.0\r\n\r\n")
            print(f"LEAK: {path} answered {sock.recv(200)!r}")
    except OSError:
        pass
# Abstract unix sockets live in the network namespace: the host's must be out of reach.
for name in (b"\0/containerd-shim", b"\0docker", b"\0/run/docker.sock"):
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(name)
            print(f"LEAK: abstract socket {name!r} accepted")
    except OSError:
        pass
print("engine sockets absent")
