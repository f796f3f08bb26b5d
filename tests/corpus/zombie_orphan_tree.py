# expect: completed
# must-contain: orphan zombies left: 0
# must-not-contain: LATE
# must-not-contain: LEAK
# Leaves zombies (its own children, never reaped) and orphans (grandchildren whose parent is
# gone), then exits. PID 1 must be an init that reaps the orphans, and the run must end with
# the main process even though sleeping orphans remain.
import os
import time


def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


# Few enough processes to stay well inside the default 64 MiB under gVisor, where each forked
# Python costs about 1.5 MiB more than under runc (30 of them peaked at 62-67 MiB there; 14, 40).
for _ in range(6):
    if os.fork() == 0:
        os._exit(0)
# The main process holds the only write end of this pipe once the middles are gone: a sleeping
# orphan's read returns when the main process has exited, however slow the machine is.
main_alive, main_alive_w = os.pipe()
for i in range(4):
    middle = os.fork()
    if middle == 0:
        if os.fork() == 0:
            # Half the orphans die at once (an init must reap them), half write after the main exits.
            if i % 2:
                time.sleep(0.1)
                os._exit(0)
            os.close(main_alive_w)
            os.read(main_alive, 1)
            time.sleep(1)
            os.write(1, b"LATE from orphan\n")
            time.sleep(60)
        os._exit(0)
    os.waitpid(middle, 0)
time.sleep(0.5)
orphan_zombies = own_zombies = 0
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            state, ppid = stat(pid)
        except OSError:
            continue
        if state == "Z":
            own_zombies += ppid == os.getpid()
            orphan_zombies += ppid != os.getpid()
print(f"own zombies: {own_zombies}, orphan zombies left: {orphan_zombies}", flush=True)
if stat(1)[0] == "Z" or orphan_zombies:
    print("LEAK: orphans are not reaped")
