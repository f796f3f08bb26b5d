# expect: completed
# must-contain: raw sockets refused
# must-not-contain: LEAK
# Raw and packet sockets need CAP_NET_RAW; they must be refused.
import socket

for family, kind, proto in [
    (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
    (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW),
    (socket.AF_PACKET, socket.SOCK_RAW, 0x0300),
    (socket.AF_NETLINK, socket.SOCK_RAW, 0),
]:
    try:
        with socket.socket(family, kind, proto) as sock:
            if family == socket.AF_NETLINK:
                # Netlink sockets may open, but they see only this namespace's loopback.
                continue
            print(f"LEAK: opened a raw socket {family!r} {kind!r}")
    except OSError:
        pass
print("raw sockets refused")
