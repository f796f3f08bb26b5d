# expect: completed
# must-contain: no file capabilities
# must-not-contain: LEAK
# Besides setuid bits, file capabilities (the security.capability attribute) can grant privilege
# on exec. No file in the image may carry them.
import os
import stat

checked = 0
stack = ["/"]
root_dev = os.stat("/").st_dev
while stack:
    directory = stack.pop()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        continue
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if info.st_dev != root_dev:
            continue
        if stat.S_ISDIR(info.st_mode):
            stack.append(entry.path)
        elif stat.S_ISREG(info.st_mode):
            checked += 1
            if info.st_mode & (stat.S_ISUID | stat.S_ISGID):
                print(f"LEAK: {entry.path} is setuid or setgid")
            try:
                os.getxattr(entry.path, "security.capability", follow_symlinks=False)
            except OSError:
                continue
            print(f"LEAK: {entry.path} has file capabilities")
print(f"no file capabilities in {checked} files")
