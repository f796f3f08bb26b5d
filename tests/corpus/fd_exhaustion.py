# expect: completed
# must-contain: EMFILE
# must-contain: nofile=256
# must-not-contain: LEAK
import errno
import resource

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
print(f"nofile={soft}")
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard + 1, hard + 1))
    print("LEAK: raised the nofile hard limit")
except (ValueError, OSError):
    pass
files = []
try:
    while True:
        files.append(open("/dev/null"))
except OSError as exc:
    print(f"{errno.errorcode[exc.errno]} after {len(files)} files")
if len(files) > hard:
    print("LEAK: more files than the limit")
