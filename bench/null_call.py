"""What a python3-libvirt client pays per call whichever daemon answers, measured on one daemon:

- the cheapest call (CONNECT_GET_LIB_VERSION) raw, with our own few lines of XDR on the unix
  socket (the machine's round trip plus the daemon's dispatch), and through python3-libvirt
  (adding libvirt's client library and the binding);
- with --list N: N extra domains are defined, and CONNECT_LIST_ALL_DOMAINS is timed raw and
  through python3-libvirt: the difference is what the client spends unpacking the answer
  into N domain objects. The domains are undefined again afterwards.

These bound how much faster than another daemon a daemon can look to python3-libvirt.

usage: null_call.py SOCKET URI [--list N]   prints JSON with medians in microseconds
"""
import json
import socket
import struct
import sys
import time

import libvirt

PROGRAM, VERSION = 0x20008086, 1
PROC_OPEN, PROC_GET_LIB_VERSION, PROC_LIST_ALL_DOMAINS = 1, 157, 273
TEMPLATE = ("<domain type='xen'><name>%s</name><memory unit='KiB'>131072</memory><vcpu>1</vcpu>"
            "<os><type>hvm</type></os></domain>")


class Raw:
    def __init__(self, path, uri):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.serial = 0
        name = uri.split('?')[0].replace('+unix', '').encode()
        name_xdr = struct.pack('>I', len(name)) + name + b'\0' * ((4 - len(name) % 4) % 4)
        self.call(PROC_OPEN, struct.pack('>I', 1) + name_xdr + struct.pack('>I', 0))

    def recv_exact(self, n):
        parts = []
        while n:
            d = self.s.recv(n)
            if not d:
                raise SystemExit('the daemon closed the connection')
            parts.append(d)
            n -= len(d)
        return b''.join(parts)

    def call(self, proc, body=b''):
        self.serial += 1
        pkt = struct.pack('>IIIiii', PROGRAM, VERSION, proc, 0, self.serial, 0) + body
        self.s.sendall(struct.pack('>I', len(pkt) + 4) + pkt)
        reply = self.recv_exact(struct.unpack('>I', self.recv_exact(4))[0] - 4)
        if struct.unpack('>i', reply[20:24])[0] != 0:
            raise SystemExit('call %d failed' % proc)


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
    extra = int(sys.argv[sys.argv.index('--list') + 1]) if '--list' in sys.argv else 0
    conn = libvirt.open(uri)
    raw = Raw(path, uri)
    out = {'raw_us': timed(lambda: raw.call(PROC_GET_LIB_VERSION)), 'libvirt_us': timed(conn.getLibVersion)}
    if extra:
        doms = [conn.defineXML(TEMPLATE % ('nullcall-%d' % i)) for i in range(extra)]
        try:
            out['domains'] = len(conn.listAllDomains(0))
            out['list_raw_us'] = timed(lambda: raw.call(PROC_LIST_ALL_DOMAINS, struct.pack('>iI', 1, 0)), 10, 20)
            out['list_libvirt_us'] = timed(lambda: conn.listAllDomains(0), 10, 20)
        finally:
            for d in doms:
                d.undefine()
    conn.close()
    print(json.dumps(out))


if __name__ == '__main__':
    main()
