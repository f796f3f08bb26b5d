# expect: completed
# must-contain: network checks done
# must-not-contain: LEAK
# Outbound TCP and UDP by address, to the internet, to the host's services, to the cloud
# metadata endpoint, and to this container's own loopback (where Redis would be on the host).
import socket

tcp_targets = [
    ("1.1.1.1", 53), ("8.8.8.8", 443), ("8.8.8.8", 53), ("93.184.216.34", 80),
    ("127.0.0.1", 6379), ("127.0.0.1", 5432), ("127.0.0.1", 8000), ("127.0.0.1", 2375),
    ("172.17.0.1", 6379), ("172.17.0.1", 5432), ("172.17.0.1", 8000), ("172.17.0.1", 2375),
    ("169.254.169.254", 80), ("10.0.0.1", 80), ("192.168.0.1", 80),
]
for host, port in tcp_targets:
    try:
        with socket.create_connection((host, port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            print(f"LEAK: connected to {host}:{port}: {conn.recv(100)!r}")
    except OSError:
        pass
for host, port in [("8.8.8.8", 53), ("1.1.1.1", 53), ("172.17.0.1", 53)]:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(0.5)
            udp.sendto(b"\x00" * 12, (host, port))
            print(f"LEAK: UDP to {host}:{port} answered {udp.recvfrom(100)!r}")
    except OSError:
        pass
for host, port in [("2606:4700:4700::1111", 53), ("::1", 6379)]:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            print(f"LEAK: connected to [{host}]:{port}")
    except OSError:
        pass
interfaces = [name for _, name in socket.if_nameindex()]
if interfaces != ["lo"]:
    print(f"LEAK: network interfaces {interfaces}")
print("network checks done")
