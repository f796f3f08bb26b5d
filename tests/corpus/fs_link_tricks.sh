# expect: completed
# must-contain: link tricks done
# must-not-contain: LEAK
# must-not-contain: root:$
ln -s /etc/shadow /tmp/shadow
cat /tmp/shadow 2>/dev/null && echo "LEAK: read /etc/shadow"
ln -s / /tmp/root
ls /tmp/root/work /tmp/root/var/lib/docker 2>/dev/null && echo "LEAK: host paths visible"
ln /etc/passwd /tmp/passwd 2>/dev/null && echo "LEAK: hard link to /etc/passwd"
ln /code/main.sh /tmp/main 2>/dev/null && echo >> /tmp/main 2>/dev/null && echo "LEAK: wrote the script through a hard link"
ln -s /code/main.sh /tmp/script && { echo "echo LEAK" >> /tmp/script; } 2>/dev/null && echo "LEAK: wrote the script through a symlink"
echo "link tricks done"
