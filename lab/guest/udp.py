#!/usr/bin/python3
"""UDP helpers for the lab (busybox has no UDP server that answers).

serve BIND PORT TEXT   answer every datagram with TEXT, from a socket bound to BIND
                       (bound to the VIP it answers from the VIP; bound to 0.0.0.0 the
                       kernel picks the source by route: the real server's own address)
ask HOST PORT N        send N datagrams, one at a time, print each answer or 'timeout'
"""
import socket
import sys

if sys.argv[1] == "serve":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[2], int(sys.argv[3])))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(sys.argv[4].encode() + b"\n", peer)
elif sys.argv[1] == "ask":
    host, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    for i in range(n):
        # A new socket per query: a new source port, so a new IPVS connection each time.
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1.5)
        s.connect((host, port))
        s.send(b"query %d\n" % i)
        try:
            print(s.recv(2048).decode().strip())
        except (socket.timeout, ConnectionRefusedError) as e:
            print("query %d: %s" % (i, type(e).__name__))
        s.close()
