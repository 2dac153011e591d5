import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtError } from '../errors.js';
import { defaultSocketPath, formatUri, parseUri, resolveDefaultUri } from './parse.js';

test('local Xen URIs', () => {
  for (const [uri, path] of [['xen:///', '/'], ['xen:///system', '/system'], ['xen://', ''], ['xen:', '']] as const) {
    const p = parseUri(uri);
    assert.equal(p.driver, 'xen', uri);
    assert.equal(p.path, path, uri);
    assert.equal(p.remote, false, uri);
    assert.equal(p.host, undefined, uri);
    assert.equal(p.transport, undefined, uri);
  }
  assert.equal(parseUri('xen:///system').daemonUri, 'xen:///system');
  assert.equal(parseUri('xen:///').daemonUri, 'xen:///');
});

test('xen+unix: the socket stays on the client, the daemon gets xen:///system', () => {
  const p = parseUri('xen+unix:///system?socket=/tmp/my%20sock');
  assert.equal(p.driver, 'xen');
  assert.equal(p.transport, 'unix');
  assert.equal(p.remote, true);
  assert.equal(p.effectiveTransport, 'unix');
  assert.equal(p.client.socket, '/tmp/my sock');
  assert.equal(p.daemonUri, 'xen:///system');
  assert.equal(p.effectivePort, undefined);
  assert.equal(parseUri('xen+unix:///?socket=/s').daemonUri, 'xen:///');
  assert.equal(parseUri('xen+unix:///system').daemonUri, 'xen:///system');
});

test('design facts §3: which parameters are forwarded', () => {
  assert.equal(parseUri('test+unix:///default?socket=/tmp/proxy.sock').daemonUri, 'test:///default');
  assert.equal(
    parseUri('test+unix:///default?socket=/x&mode=legacy&keepalive_interval=7').daemonUri,
    'test:///default?keepalive_interval=7',
  );
  assert.equal(parseUri('libxl+unix:///system?socket=/s').daemonUri, 'libxl:///system');
  assert.equal(parseUri('xen:///system?foo=bar').daemonUri, 'xen:///system?foo=bar');
  assert.equal(parseUri('xen:///system?foo=bar').remote, false);
  assert.equal(parseUri('remote:///').daemonUri, '', 'a bare remote URI lets the daemon pick');
  assert.equal(parseUri('xen+tcp://h/system?name=libxl:///system').daemonUri, 'libxl:///system');
});

test('xen://host[:port]/system: TLS with pkipath and no_verify', () => {
  const p = parseUri('xen://example.com:16600/system?pkipath=/etc/pki/x&no_verify=1');
  assert.equal(p.host, 'example.com');
  assert.equal(p.port, 16600);
  assert.equal(p.remote, true);
  assert.equal(p.effectiveTransport, 'tls');
  assert.equal(p.effectivePort, 16600);
  assert.equal(p.client.pkipath, '/etc/pki/x');
  assert.equal(p.client.noVerify, true);
  assert.equal(p.daemonUri, 'xen:///system');
  const q = parseUri('xen://example.com/');
  assert.equal(q.effectivePort, 16514);
  assert.equal(q.client.noVerify, undefined);
  assert.equal(parseUri('xen://h/?no_verify=0').client.noVerify, false);
});

test('xen+tcp://host/', () => {
  const p = parseUri('xen+tcp://10.0.0.5/');
  assert.equal(p.transport, 'tcp');
  assert.equal(p.host, '10.0.0.5');
  assert.equal(p.effectivePort, 16509);
  assert.equal(p.daemonUri, 'xen:///');
  assert.equal(parseUri('xen+tcp://[fe80::1]:1234/system').host, 'fe80::1');
  assert.equal(parseUri('xen+tcp://[fe80::1]:1234/system').port, 1234);
});

test('xen+ssh://user@host:port/system with keyfile, netcat, no_tty, socket', () => {
  const p = parseUri('xen+ssh://root@example.com:2222/system?keyfile=/root/.ssh/id_ed25519&netcat=/bin/nc.openbsd&no_tty=1&socket=/run/libvirt/virtxend-sock');
  assert.equal(p.transport, 'ssh');
  assert.equal(p.user, 'root');
  assert.equal(p.host, 'example.com');
  assert.equal(p.port, 2222);
  assert.equal(p.effectivePort, 2222);
  assert.equal(p.path, '/system');
  assert.deepEqual(p.client, {
    keyfile: '/root/.ssh/id_ed25519', netcat: '/bin/nc.openbsd', noTty: true, socket: '/run/libvirt/virtxend-sock',
  });
  assert.equal(p.daemonUri, 'xen:///system');
  assert.equal(parseUri('xen+ssh://root@h/').effectivePort, 22);
  assert.equal(parseUri('xen+ssh://h/system?proxy=native').client.proxy, 'native');
});

test('test driver URIs', () => {
  const d = parseUri('test:///default');
  assert.equal(d.driver, 'test');
  assert.equal(d.path, '/default');
  assert.equal(d.remote, false);
  const u = parseUri('test+unix:///default');
  assert.equal(u.remote, true);
  assert.equal(u.daemonUri, 'test:///default');
  const dir = parseUri('test:///var/tmp/my%20host');
  assert.equal(dir.path, '/var/tmp/my host');
  assert.equal(formatUri(dir), 'test:///var/tmp/my%20host');
});

test('scheme and transport are case-insensitive; params keep order', () => {
  const p = parseUri('XEN+SSH://h/system?b=2&a=1;c=x+y');
  assert.equal(p.driver, 'xen');
  assert.equal(p.transport, 'ssh');
  assert.deepEqual(p.params, [{ name: 'b', value: '2' }, { name: 'a', value: '1' }, { name: 'c', value: 'x y' }]);
  assert.equal(p.daemonUri, 'xen:///system?b=2&a=1&c=x%20y');
});

test('malformed URIs are VirtErrors that say what is wrong', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /empty/],
    ['   ', /empty/],
    ['system', /no scheme/],
    ['://x', /no scheme/],
    ['1xen:///', /invalid scheme/],
    ['xen+carrier-pigeon:///', /unknown transport 'carrier-pigeon'/],
    ['xen+ssh+tls://h/', /more than one transport/],
    ['xen+ssh:///system', /needs a host/],
    ['xen+unix://host/system', /cannot take a host/],
    ['xen://h:99999/', /out of range/],
    ['xen://h:port/', /not a number/],
    ['xen://user@:22/', /without a host/],
    ['xen:///sys%zztem', /percent-escape/],
    ['xen:///system?no_verify=yes', /must be an integer/],
    ['xen://h/?mode=fast', /mode must be/],
    ['xen+tcp://h/?socket=/s', /only applies to the unix and ssh/],
    ['xen+ext:///', /needs a 'command'/],
    ['xen:///sys tem', /whitespace/],
    ['xen:system', /expected '\/\/' or '\/'/],
    ['xen://[::1/', /unterminated/],
  ];
  for (const [uri, re] of cases) {
    assert.throws(() => parseUri(uri), (e: unknown) => {
      assert.ok(e instanceof VirtError, `${uri}: ${e}`);
      assert.equal(e.codeName, 'INVALID_ARG');
      assert.match(e.message, /^invalid argument: malformed connection URI '/);
      assert.match(e.message, re, uri);
      return true;
    }, uri);
  }
});

test('default URI: explicit, then XENVIRT_DEFAULT_URI, then LIBVIRT_DEFAULT_URI', () => {
  assert.deepEqual(resolveDefaultUri('test:///default', { XENVIRT_DEFAULT_URI: 'xen:///' }), { uri: 'test:///default', from: 'explicit' });
  assert.deepEqual(resolveDefaultUri(undefined, { XENVIRT_DEFAULT_URI: 'xen:///', LIBVIRT_DEFAULT_URI: 'test:///default' }), { uri: 'xen:///', from: 'XENVIRT_DEFAULT_URI' });
  assert.deepEqual(resolveDefaultUri(undefined, { XENVIRT_DEFAULT_URI: '', LIBVIRT_DEFAULT_URI: 'test:///default' }), { uri: 'test:///default', from: 'LIBVIRT_DEFAULT_URI' });
  assert.deepEqual(resolveDefaultUri('', {}), { uri: undefined, from: 'none' });
});

test('default sockets (design facts §4)', () => {
  const none = () => false;
  const has = (p: string) => p === '/var/run/libvirt/virtxend-sock';
  assert.equal(defaultSocketPath(parseUri('xen:///system'), false, none), '/var/run/libvirt/libvirt-sock');
  assert.equal(defaultSocketPath(parseUri('xen:///system'), false, has), '/var/run/libvirt/virtxend-sock');
  assert.equal(defaultSocketPath(parseUri('xen:///system?mode=direct'), false, none), '/var/run/libvirt/virtxend-sock');
  assert.equal(defaultSocketPath(parseUri('xen:///system?mode=legacy'), false, has), '/var/run/libvirt/libvirt-sock');
  assert.equal(defaultSocketPath(parseUri('test+unix:///default?mode=direct'), false, none), '/var/run/libvirt/virttestd-sock');
  assert.equal(defaultSocketPath(parseUri('xen:///system'), true, none), '/var/run/libvirt/libvirt-sock-ro');
  assert.equal(defaultSocketPath(parseUri('xen+unix:///system?socket=/x'), false, has), '/x');
});
