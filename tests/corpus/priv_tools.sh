# expect: completed
# runtimes: runc  (gVisor emulates these calls inside its own kernel, which is the boundary there)
# must-contain: privileged tools refused
# must-not-contain: LEAK
# The same attempts through the command-line tools a script would reach for.
run() { "$@" >/dev/null 2>&1 && echo "LEAK: $* succeeded"; }
run mount -t tmpfs none /tmp
run mount -o remount,rw /
run umount /proc
run unshare -r true
run unshare -m true
run unshare -n true
run unshare -p -f true
run unshare -U -r -m sh -c 'mount -t tmpfs none /tmp'
run nsenter -t 1 -m -u -n -i -p true
run hostname pwned
run chroot / true
run setpriv --reuid=0 --regid=0 --clear-groups true
run setpriv --inh-caps=+all true
run chown root /tmp
run mknod /tmp/mem c 1 1
run ionice -c 1 -n 0 true
[ "$(nice -n -5 nice 2>/dev/null)" -lt 0 ] && echo "LEAK: raised the priority"
run chrt -f 10 true
run renice -n -5 -p $$
run prlimit --nofile=100000:100000 --pid $$
run dmesg
echo "privileged tools refused"
