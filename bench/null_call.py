"""The cheapest call a libvirt daemon answers (CONNECT_GET_LIB_VERSION), timed two ways:
raw (our own few lines of XDR on the unix socket: the machine's round trip plus the daemon's
dispatch) and through python3-libvirt (adding libvirt's client library and the binding).
Every python3-libvirt call pays at least the second figure, whichever daemon answers it, so
it bounds how much faster than another daemon a daemon can look to that client.

usage: null_call.py SOCKET URI   prints JSON {"raw_us": ..., "libvirt_us": ...} (medians)
"""
import json
import socket
import struct
import sys
import time

import libvirt

PROGRAM, VERSION = 0x20008086, 1
PROC_OPEN, PROC_GET_LIB_VERSION = 1, 157


def raw_us(path, uri):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    serial = [0]

    def recv_exact(n):
        b = b''
        while len(b) < n:
            d = s.recv(n - len(b))
            if not d:
                raise SystemExit('the daemon closed the connection')
            b += d
        return b

    def call(proc, body=b''):
        serial[0] += 1
        pkt = struct.pack('>IIIiii', PROGRAM, VERSION, proc, 0, serial[0], 0) + body
        s.sendall(struct.pack('>I', len(pkt) + 4) + pkt)
        reply = recv_exact(struct.unpack('>I', recv_exact(4))[0] - 4)
        if struct.unpack('>i', reply[20:24])[0] != 0:
            raise SystemExit('call %d failed' % proc)

    name = uri.split('?')[0].replace('+unix', '').encode()
    name_xdr = struct.pack('>I', len(name)) + name + b'\0' * ((4 - len(name) % 4) % 4)
    call(PROC_OPEN, struct.pack('>I', 1) + name_xdr + struct.pack('>I', 0))
    return timed(lambda: call(PROC_GET_LIB_VERSION))


def timed(fn, batches=20, per_batch=500):
    for _ in range(per_batch):
        fn()
    times = []
    for _ in range(batches):
        t = time.perf_counter()
        for _ in range(per_batch):
            fn()
        times.append((time.perf_counter() - t) / per_batch * 1e6)
    times.sort()
    return times[len(times) // 2]


def main():
    path, uri = sys.argv[1], sys.argv[2]
    conn = libvirt.open(uri)
    out = {'raw_us': raw_us(path, uri), 'libvirt_us': timed(conn.getLibVersion)}
    conn.close()
    print(json.dumps(out))


if __name__ == '__main__':
    main()
