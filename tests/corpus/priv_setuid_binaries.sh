# expect: completed
# runtimes: runc  (the files are the image's, whatever the runtime; under gVisor this full-disk find can outlast 5 s)
# must-contain: no setuid or setgid files
# must-contain: su refused
# must-not-contain: LEAK
# Any setuid binary is a way back to root; none may exist, and the known ones must be useless.
found=$(find / -xdev \( -perm -4000 -o -perm -2000 \) -type f 2>/dev/null)
if [ -n "$found" ]; then echo "LEAK: setuid or setgid files: $found"; else echo "no setuid or setgid files"; fi
for tool in su newgrp sg passwd chsh chfn gpasswd mount umount; do
  path=$(command -v "$tool") || continue
  if [ -u "$path" ] || [ -g "$path" ]; then echo "LEAK: $path is setuid"; fi
done
echo | timeout 1 su -c 'id -u' root 2>/dev/null | grep -qx 0 && echo "LEAK: su gave root"
echo "su refused"
true
