# expect: completed
# must-contain: all writes outside the scratch space were refused
# must-not-contain: LEAK
for path in /evil /code/evil /code/main.sh /etc/evil /etc/passwd /usr/evil /usr/bin/bash /root/evil /var/tmp/evil /run/evil /dev/evil; do
  if (echo x >> "$path") 2>/dev/null; then echo "LEAK: wrote $path"; fi
done
mkdir /evil_dir 2>/dev/null && echo "LEAK: mkdir /evil_dir"
chmod 777 /code/main.sh 2>/dev/null && echo "LEAK: chmod /code/main.sh"
rm -f /code/main.sh 2>/dev/null && [ ! -e /code/main.sh ] && echo "LEAK: removed /code/main.sh"
touch /usr/bin/evil 2>/dev/null && echo "LEAK: touch /usr/bin/evil"
cp /bin/sh /tmp/sh && chmod u+s /tmp/sh && [ -u /tmp/sh ] && { /tmp/sh -c 'id -u'; } 2>/dev/null | grep -qx 0 && echo "LEAK: setuid in /tmp"
echo "scratch works" > /tmp/scratch || echo "LEAK: /tmp is not writable"
echo "all writes outside the scratch space were refused"
