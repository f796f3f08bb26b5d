# expect: completed
# must-contain: dns checks done
# must-not-contain: LEAK
# Name resolution must fail: no resolver is reachable, and no name may lead out.
import socket

for name in ("example.com", "pypi.org", "host.docker.internal", "gateway.docker.internal",
             "metadata.google.internal", "redis", "db", "postgres", "web"):
    try:
        infos = socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP)
    except OSError:
        continue
    for *_, address in infos:
        try:
            with socket.create_connection(address[:2], timeout=0.5):
                print(f"LEAK: {name} resolved to {address[0]} and accepted a connection")
        except OSError:
            pass
print("dns checks done")
