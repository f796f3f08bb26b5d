# expect: completed
# must-contain: refused under every runtime
# must-not-contain: LEAK
# What Docker's seccomp profile and the dropped capabilities refuse, which gVisor emulates in its own
# kernel unless runsc applies that profile (--oci-seccomp): asserted under runc and runsc alike.
import ctypes
import ctypes.util
import os
import socket

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
UNSHARE, CHROOT, MOUNT, KEYCTL, BPF, PERF_EVENT_OPEN = 272, 161, 165, 250, 321, 298
PTRACE_ATTACH, PTRACE_DETACH = 16, 17

calls = [
    ("unshare user", UNSHARE, CLONE_NEWUSER),
    ("unshare mount", UNSHARE, CLONE_NEWNS),
    ("unshare net", UNSHARE, CLONE_NEWNET),
    ("unshare user+mount+net", UNSHARE, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET),
    ("chroot /tmp", CHROOT, b"/tmp"),
    ("mount tmpfs", MOUNT, b"none", b"/tmp", b"tmpfs", 0, None),
    ("keyctl join session", KEYCTL, 1, None),
    ("bpf", BPF, 0, None, 0),
    ("perf_event_open", PERF_EVENT_OPEN, None, 0, -1, -1, 0),
]
for name, number, *args in calls:
    result = libc.syscall(number, *args)
    if result >= 0:
        print(f"LEAK: {name} succeeded ({result})")

for name, family, kind, proto in [
    ("raw ICMP", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
    ("raw IP", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW),
    ("packet", socket.AF_PACKET, socket.SOCK_RAW, 0x0300),
]:
    try:
        socket.socket(family, kind, proto).close()
        print(f"LEAK: opened a {name} socket")
    except OSError:
        pass

# The platform's processes: the init, and the script's parent (the init itself under runc, gVisor's
# output relay under runsc). The script's own children are its own, under either runtime.
for target in sorted({1, os.getppid()}):
    if libc.ptrace(PTRACE_ATTACH, target, None, None) == 0:
        print(f"LEAK: ptrace attached to {target}")
        libc.ptrace(PTRACE_DETACH, target, None, None)
print("refused under every runtime")
