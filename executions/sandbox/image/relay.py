"""Under gVisor, the process between the init and the script: it passes the script's output on whole.

gVisor hands a write on the container's stdout or stderr to the host pipe without blocking, and a
write larger than the room left in that pipe returns short. Python's unbuffered text streams (`-u`)
drop the rest without a word, so a script that wrote 32 MiB and exited 0 looked like one that
wrote 64 KiB. Here the script writes into pipes inside the sandbox, where a write blocks until it
is taken whole, and this relay copies them to the real stdout and stderr, retrying short writes, so
the worker sees every byte and its output caps hold as under runc.

When the script exits, the relay passes on what was already in the pipes, then exits with the
script's status: what background processes write later is lost, as under runc, where the init
ends the container with its child. Fixed platform code, part of the sandbox image; run as
`python3 -I -S relay.py COMMAND...`. The script runs as the same user and may kill it: it then
loses its own output, and the run ends as if the script had been killed.
"""

import ctypes
import fcntl
import os
import select
import signal
import struct
import sys
import termios

CHUNK = 64 * 1024
PR_SET_DUMPABLE = 4


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def waiting_bytes(fd):
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def start(argv, pipes):
    pid = os.fork()
    if pid == 0:
        # As the script would have them without this relay: Python ignores SIGPIPE and SIGXFSZ.
        for number in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD):
            signal.signal(number, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        for target, (_, write_end) in pipes.items():
            os.dup2(write_end, target)
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    return pid


def relay(pid, sources, wakeup):
    """Copy output until the script exits; its wait status."""
    poller = select.poll()
    for fd in (*sources, wakeup):
        poller.register(fd, select.POLLIN)
    while True:
        for fd, _ in poller.poll():
            if fd == wakeup:
                os.read(wakeup, 512)
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    return status
                continue
            data = os.read(fd, CHUNK)
            if data:
                write_all(sources[fd], data)
            else:
                poller.unregister(fd)


def drain(sources):
    """Pass on what the pipes hold now, and no more: anything still running keeps writing."""
    for fd, target in sources.items():
        left = waiting_bytes(fd)
        while left > 0:
            data = os.read(fd, min(left, CHUNK))
            if not data:
                break
            write_all(target, data)
            left -= len(data)


def main(argv):
    # Not dumpable: the script (same user) must not ptrace the relay or read its memory; its own
    # process becomes dumpable again when it executes the interpreter.
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        return 125
    pipes = {target: os.pipe() for target in (1, 2)}
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    # A handler (not SIG_DFL) so that SIGCHLD reaches the wakeup pipe.
    signal.signal(signal.SIGCHLD, lambda number, frame: None)
    pid = start(argv, pipes)
    for _, write_end in pipes.values():
        os.close(write_end)
    sources = {read_end: target for target, (read_end, _) in pipes.items()}
    status = relay(pid, sources, wake_read)
    drain(sources)
    code = os.waitstatus_to_exitcode(status)
    # Killed by a signal: the init reports 128 + its number, as it would for the script itself.
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
