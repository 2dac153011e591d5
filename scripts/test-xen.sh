#!/bin/bash
# npm run test:xen / npm run bench:xen: build, then boot the QEMU Xen host and run the real-Xen
# suite (or, with --bench, the start-up benchmark) in its dom0. See test/xen/harness.ts.
#   scripts/test-xen.sh [--bench] [--only host,pv-kernel,pv-crash,pv-bootloader,hvm,native]
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p . >/dev/null || true   # tsc emits even when unrelated files have type errors
[ -f dist/test/xen/harness.js ] || { echo "test-xen: dist/test/xen/harness.js was not built" >&2; exit 1; }
exec node dist/test/xen/harness.js --run "$@"
