# expect: completed
# must-contain: ptrace checks done
# must-not-contain: LEAK
# The init at PID 1 is the platform's: it forwards the kill and reaps orphans. The script must
# not be able to stop it, read or write its memory, or take control of it with ptrace.
import ctypes
import ctypes.util
import os

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.syscall.restype = ctypes.c_long
PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SEIZE = 16, 17, 0x4206
SYS_process_vm_readv = 310
__WALL = 0x40000000

if libc.ptrace(PTRACE_ATTACH, 1, None, None) == 0:
    print("LEAK: ptrace attached to PID 1", flush=True)
    # Let it go again, so that the run ends as it would have: the leak is already shown.
    os.waitpid(1, __WALL)
    libc.ptrace(PTRACE_DETACH, 1, None, None)
if libc.ptrace(PTRACE_SEIZE, 1, None, None) == 0:
    print("LEAK: ptrace seized PID 1", flush=True)
    libc.ptrace(PTRACE_DETACH, 1, None, None)

try:
    with open("/proc/1/maps") as maps:
        start = int(maps.readline().split("-")[0], 16)
except OSError:
    start = None
if start is not None:
    try:
        with open("/proc/1/mem", "rb") as mem:
            mem.seek(start)
            print(f"LEAK: read PID 1's memory through /proc/1/mem: {mem.read(4)!r}", flush=True)
    except OSError:
        pass

    class IOVec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    buffer = ctypes.create_string_buffer(4)
    local, remote = IOVec(ctypes.cast(buffer, ctypes.c_void_p), 4), IOVec(start, 4)
    if libc.syscall(SYS_process_vm_readv, 1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) > 0:
        print(f"LEAK: read PID 1's memory with process_vm_readv: {buffer.raw!r}", flush=True)
print("ptrace checks done")
