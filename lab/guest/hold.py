#!/usr/bin/python3
"""Long-lived TCP connections for the failover scenarios (busybox httpd closes each
connection after one answer, and a failover must be seen by connections that span it).

serve BIND PORT TEXT     a threaded TCP server bound to BIND (the VIP on a real server): a
                         connection that starts with "GET " gets one HTTP/1.0 answer (curl);
                         any other connection gets "TEXT n" back for every line it sends.
hold HOST PORT N STOP    open N connections, then every 0.5 s send one line on each that
                         has no answer pending, until the file STOP exists; wait up to 5 s
                         for the last answers, close, and print per connection what was
                         sent and answered and how it ended (ok, reset, eof, timeout).
"""
import os
import selectors
import socket
import sys
import threading
import time


def serve(bind, port, text):
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((bind, port))
    lsock.listen(64)

    def one(conn):
        f = conn.makefile("rb")
        n = 0
        try:
            for line in f:
                if n == 0 and line.startswith(b"GET "):
                    body = text.encode() + b"\n"
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
                    break
                n += 1
                conn.sendall(b"%s %d\n" % (text.encode(), n))
        except OSError:
            pass
        conn.close()

    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=one, args=(conn,), daemon=True).start()


def hold(host, port, n, stop):
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(n):
        s = socket.create_connection((host, port), timeout=5)
        s.setblocking(False)
        c = {"i": i, "s": s, "sent": 0, "got": 0, "buf": b"", "end": "ok",
             "port": s.getsockname()[1], "pending": False}
        conns.append(c)
        sel.register(s, selectors.EVENT_READ, c)
    print("established %s" % " ".join(str(c["port"]) for c in conns), flush=True)
    last_send = 0.0
    deadline = None
    while True:
        live = [c for c in conns if c["end"] == "ok"]
        if deadline is None and os.path.exists(stop):
            deadline = time.time() + 5
        if deadline is not None and (time.time() > deadline or
                                     not any(c["pending"] for c in live)):
            break
        if not live:
            break
        now = time.time()
        if deadline is None and now - last_send >= 0.5:
            last_send = now
            for c in live:
                if not c["pending"]:
                    c["sent"] += 1
                    try:
                        c["s"].send(b"request %d\n" % c["sent"])
                        c["pending"] = True
                    except OSError as e:
                        c["end"] = type(e).__name__
        for key, _ in sel.select(timeout=0.1):
            c = key.data
            if c["end"] != "ok":
                continue
            try:
                data = c["s"].recv(4096)
            except ConnectionResetError:
                data = None
                c["end"] = "reset"
            except OSError as e:
                data = None
                c["end"] = type(e).__name__
            if data == b"":
                c["end"] = "eof"
            if c["end"] != "ok":
                sel.unregister(c["s"])
                continue
            c["buf"] += data
            while b"\n" in c["buf"]:
                line, c["buf"] = c["buf"].split(b"\n", 1)
                c["got"] += 1
                c["pending"] = False
                c["last"] = line.decode(errors="replace")
    for c in conns:
        if c["end"] == "ok" and c["pending"]:
            c["end"] = "timeout"
        print("conn %d port %d sent %d answered %d last %r end %s" % (
            c["i"], c["port"], c["sent"], c["got"], c.get("last", ""), c["end"]), flush=True)
        c["s"].close()


if sys.argv[1] == "serve":
    serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
elif sys.argv[1] == "hold":
    hold(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
