import test from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { parseUri } from '../../uri/parse.js';
import { xlTarget } from './open.js';

test('xen:///system selects the xl driver and its state directory', () => {
  const saved = process.env['XENVIRT_XL_STATE_DIR'];
  try {
    process.env['XENVIRT_XL_STATE_DIR'] = '/srv/xenvirt';
    assert.deepEqual(xlTarget(parseUri('xen:///system')), { stateDir: '/srv/xenvirt', uri: 'xen:///system', key: 'xl:/srv/xenvirt' });
    delete process.env['XENVIRT_XL_STATE_DIR'];
    const t = xlTarget(parseUri('xen:///system?state=/tmp/x&create=paused'));
    assert.equal(t.stateDir, '/tmp/x');
    assert.equal(t.createMode, 'paused');
    const def = xlTarget(parseUri('xen:///system')).stateDir;
    assert.equal(def, process.getuid?.() === 0 ? '/var/lib/xenvirt/libxl' : path.join(os.homedir(), '.local/share/xenvirt/libxl'));
  } finally {
    if (saved === undefined) delete process.env['XENVIRT_XL_STATE_DIR'];
    else process.env['XENVIRT_XL_STATE_DIR'] = saved;
  }
  assert.throws(() => xlTarget(parseUri('xen:///system?state=relative')), /must be an absolute path/);
  assert.throws(() => xlTarget(parseUri('xen:///system?create=sometimes')), /create='sometimes' must be 'direct'/);
});
