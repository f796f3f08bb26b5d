# expect: completed
# runtimes: runc  (gVisor emulates these calls inside its own kernel, which is the boundary there)
# must-contain: privileged system calls refused
# must-not-contain: LEAK
# Calls the kernel directly (no helper binary to be missing) for everything that needs privilege
# or that Docker's seccomp profile blocks. Every one must fail. (ptrace has its own case.)
import ctypes
import ctypes.util
import os

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.syscall.restype = ctypes.c_long

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP = 0x10000000, 0x20000000, 0x40000000, 0x02000000
SYS = {"ptrace": 101, "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321,
       "perf_event_open": 298, "init_module": 175, "finit_module": 313, "delete_module": 176,
       "kexec_load": 246, "reboot": 169, "swapon": 167, "acct": 163, "settimeofday": 164,
       "pivot_root": 155, "chroot": 161, "setns": 308, "open_by_handle_at": 304,
       "userfaultfd": 323, "iopl": 172, "ioperm": 173, "unshare": 272, "mount": 165,
       "umount2": 166, "sethostname": 170, "setdomainname": 171, "setuid": 105, "setgid": 106,
       "setgroups": 116, "quotactl": 179, "lookup_dcookie": 212, "fsopen": 430, "move_mount": 429,
       "mknod": 133, "name_to_handle_at": 303, "process_vm_writev": 311, "kcmp": 312,
       "personality": 135, "syslog": 103, "vhangup": 153, "nfsservctl": 180}

attempts = [
    ("mount tmpfs", "mount", b"none", b"/tmp", b"tmpfs", 0, None),
    ("mount proc", "mount", b"proc", b"/tmp", b"proc", 0, None),
    ("remount / rw", "mount", None, b"/", None, 32 | 1 << 5, None),
    ("umount /proc", "umount2", b"/proc", 2),
    ("unshare user", "unshare", CLONE_NEWUSER),
    ("unshare mount", "unshare", CLONE_NEWNS),
    ("unshare net", "unshare", CLONE_NEWNET),
    ("unshare pid", "unshare", CLONE_NEWPID),
    ("unshare uts", "unshare", CLONE_NEWUTS),
    ("unshare ipc", "unshare", CLONE_NEWIPC),
    ("unshare cgroup", "unshare", CLONE_NEWCGROUP),
    ("keyctl join session", "keyctl", 1, None),
    ("add_key", "add_key", b"user", b"k", b"v", 1, -4),
    ("sethostname", "sethostname", b"pwned", 5),
    ("setdomainname", "setdomainname", b"pwned", 5),
    ("setuid 0", "setuid", 0),
    ("setgid 0", "setgid", 0),
    ("setgroups", "setgroups", 0, None),
    ("chroot /tmp", "chroot", b"/tmp"),
    ("pivot_root", "pivot_root", b"/tmp", b"/tmp"),
    ("setns init net", None),
    ("bpf", "bpf", 0, None, 0),
    ("perf_event_open", "perf_event_open", None, 0, -1, -1, 0),
    ("init_module", "init_module", None, 0, b""),
    ("finit_module", "finit_module", 0, b"", 0),
    ("delete_module", "delete_module", b"ext4", 0),
    ("kexec_load", "kexec_load", 0, 0, None, 0),
    ("swapon", "swapon", b"/tmp/swap", 0),
    ("acct", "acct", b"/tmp/acct"),
    ("settimeofday", "settimeofday", None, None),
    ("open_by_handle_at", "open_by_handle_at", 0, None, 0),
    ("iopl", "iopl", 3),
    ("ioperm", "ioperm", 0, 1024, 1),
    ("quotactl", "quotactl", 0, None, 0, None),
    ("mknod block device", "mknod", b"/tmp/sda", 0o060600, 8 << 8),
    ("mknod char device", "mknod", b"/tmp/mem", 0o020600, 1 << 8 | 1),
    ("syslog read", "syslog", 3, ctypes.create_string_buffer(4096), 4096),
    ("fsopen", "fsopen", b"tmpfs", 0),
    ("vhangup", "vhangup"),
]


def setns_init_net():
    fd = os.open("/proc/1/ns/net", os.O_RDONLY)
    try:
        return libc.syscall(SYS["setns"], fd, 0)
    finally:
        os.close(fd)


for name, call, *args in attempts:
    if call is None:
        try:
            result = setns_init_net()
        except OSError:
            continue
    else:
        result = libc.syscall(SYS[call], *args)
    if result >= 0:
        print(f"LEAK: {name} succeeded ({result})")
print("privileged system calls refused")
