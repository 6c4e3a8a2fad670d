#!/usr/bin/python3
"""A TCP client that reuses its source port (lab scenarios syn-drop, syn-reuse-ok).

get HOST PORT SRCPORT N GAP   N HTTP requests to HOST:PORT, each on a new connection bound
                              to the same source port SRCPORT (SO_REUSEADDR), each ended
                              with an RST (SO_LINGER 0: no TIME_WAIT on the client, so the
                              port is free at once), GAP seconds apart. Prints, per request,
                              the time connect() took and the first line of the answer.

The director sees only the client's packets (tunnel mode): the RST moves its IPVS entry to
CLOSE (10 s), so the next connection from the same port finds that entry, which the kernel
treats as reusable (conn_reuse_mode=1).
"""
import socket
import struct
import sys
import time

if sys.argv[1] == "get":
    host, port, sport = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    n, gap = int(sys.argv[5]), float(sys.argv[6])
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", sport))
        s.settimeout(8)
        t0 = time.monotonic()
        try:
            s.connect((host, port))
            took = time.monotonic() - t0
            s.sendall(b"GET / HTTP/1.0\r\nHost: %s\r\n\r\n" % host.encode())
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            body = data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip()
            print("port %d request %d: connect %.3f s, answer %s" % (sport, i, took, body))
        except OSError as e:
            print("port %d request %d: %s" % (sport, i, e))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        time.sleep(gap)
