#!/usr/bin/python3
"""python3-libvirt against xenvirtd: the calls the driver's users make, and a lifecycle event.

usage: python-client.py URI   prints one line per check ("ok NAME ..."); exits 1 on the first failure.
"""
import sys
import threading
import time

import libvirt

URI = sys.argv[1]
XML = """<domain type='xen'>
  <name>py-guest</name>
  <uuid>5f1e8d2c-3b4a-4c6d-8e9f-0a1b2c3d4e5f</uuid>
  <memory unit='KiB'>262144</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
</domain>"""


def check(name, cond, detail=''):
    if not cond:
        print('FAIL %s %s' % (name, detail))
        sys.exit(1)
    print('ok %s %s' % (name, detail))


# libvirt's default handler prints every error on stderr; the checks look at them instead.
libvirt.registerErrorHandler(lambda ctx, err: None, None)
libvirt.virEventRegisterDefaultImpl()
stop = False


def loop():
    while not stop:
        libvirt.virEventRunDefaultImpl()


threading.Thread(target=loop, daemon=True).start()

conn = libvirt.open(URI)
check('open', conn is not None, conn.getURI())
check('type', conn.getType() == 'Xen', conn.getType())

events = []
seen = threading.Event()


def lifecycle(c, dom, event, detail, opaque):
    events.append((dom.name(), event, detail))
    if dom.name() == 'py-guest' and event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
        seen.set()


cb = conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None)

names = sorted(d.name() for d in conn.listAllDomains())
check('listAllDomains', 'Domain-0' in names, ','.join(names))

dom0 = conn.lookupByName('Domain-0')
info = dom0.info()
check('lookupByName+info', dom0.ID() == 0 and info[0] == libvirt.VIR_DOMAIN_RUNNING, repr(info[:4]))

dom = conn.defineXML(XML)
check('defineXML', dom.name() == 'py-guest' and dom.ID() == -1 and dom.UUIDString() == '5f1e8d2c-3b4a-4c6d-8e9f-0a1b2c3d4e5f')
xml = dom.XMLDesc(0)
check('XMLDesc', "<domain type='xen'>" in xml and '<name>py-guest</name>' in xml and "<memory unit='KiB'>262144</memory>" in xml)
info = dom.info()
check('info-inactive', info[0] == libvirt.VIR_DOMAIN_SHUTOFF and info[1] == 262144 and info[3] == 2, repr(info[:4]))

dom.create()
check('create', dom.isActive() == 1 and dom.ID() > 0, 'id=%d' % dom.ID())
check('state-running', dom.state() == [libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_BOOTED], repr(dom.state()))
dom.destroy()
check('destroy', dom.isActive() == 0 and dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF)
check('lifecycle-event', seen.wait(10), repr(events))
started = [e for e in events if e[0] == 'py-guest' and e[1] == libvirt.VIR_DOMAIN_EVENT_STARTED]
check('started-event', len(started) == 1 and started[0][2] == libvirt.VIR_DOMAIN_EVENT_STARTED_BOOTED, repr(started))

dom.undefine()
try:
    conn.lookupByName('py-guest')
    check('undefine', False, 'still defined')
except libvirt.libvirtError as e:
    check('undefine', e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN, e.get_error_message())

try:
    conn.lookupByName('Domain-0').destroy()
    check('error-code', False)
except libvirt.libvirtError as e:
    check('error-code', e.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID, '%d %s' % (e.get_error_code(), e.get_error_message()))

conn.domainEventDeregisterAny(cb)
conn.close()
stop = True
print('done')
