# expect: completed
# must-contain: network checks done
# must-not-contain: LEAK
# Bash's own /dev/tcp and /dev/udp, by address and by name.
for target in 1.1.1.1/53 8.8.8.8/443 127.0.0.1/6379 172.17.0.1/6379 172.17.0.1/5432 \
              172.17.0.1/8000 169.254.169.254/80 example.com/80 host.docker.internal/80; do
  if timeout 1 bash -c "exec 3<>/dev/tcp/$target" 2>/dev/null; then
    echo "LEAK: connected to $target"
  fi
done
if timeout 1 bash -c 'echo x > /dev/udp/8.8.8.8/53' 2>/dev/null; then
  # UDP "succeeds" without a route only if the kernel had one: that is the leak.
  echo "LEAK: sent UDP to 8.8.8.8"
fi
getent hosts example.com && echo "LEAK: example.com resolved"
echo "network checks done"
