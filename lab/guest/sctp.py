#!/usr/bin/python3
"""SCTP helpers for the lab (no SCTP tool ships in the guest).

serve BIND PORT TEXT   accept associations on BIND:PORT (one-to-one style), answer the first
                       message of each with TEXT, then shut the association down
ask HOST PORT N        N associations one after the other, each sends one message and prints
                       the answer or the error
"""
import socket
import sys

if sys.argv[1] == "serve":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    s.bind((sys.argv[2], int(sys.argv[3])))
    s.listen(8)
    while True:
        c, peer = s.accept()
        try:
            c.recv(2048)
            c.send(sys.argv[4].encode() + b"\n")
        finally:
            c.close()
elif sys.argv[1] == "ask":
    host, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    for i in range(n):
        # A new association each time: a new source port, so a new IPVS connection.
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
        s.settimeout(3)
        try:
            s.connect((host, port))
            s.send(b"query %d\n" % i)
            print(s.recv(2048).decode().strip())
        except OSError as e:
            print("association %d: %s" % (i, type(e).__name__))
        s.close()
