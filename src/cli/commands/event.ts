/** `event`: wait for domain events and print them as virsh does. */
import type { Command } from '../command.js';
import { VirtError } from '../../errors.js';
import type { DomainRef, LifecycleEvent } from '../../driver/connection.js';
import { connect, eventDetailName, eventName, exclusive, flag, lookupDomain } from './util.js';

/** virsh's event types, in virDomainEventID order; `event --list` prints them. */
const EVENT_TYPES = [
  'lifecycle', 'reboot', 'rtc-change', 'watchdog', 'io-error', 'graphics', 'io-error-reason', 'control-error',
  'block-job', 'disk-change', 'tray-change', 'pm-wakeup', 'pm-suspend', 'balloon-change', 'pm-suspend-disk',
  'device-removed', 'block-job-2', 'tunable', 'agent-lifecycle', 'device-added', 'migration-iteration',
  'job-completed', 'device-removal-failed', 'metadata-change', 'block-threshold', 'memory-failure',
  'memory-device-size-change',
];

/** virTimeStringNowRaw: UTC, milliseconds, a literal +0000. */
function timestamp(now = new Date()): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${now.getUTCFullYear()}-${p(now.getUTCMonth() + 1)}-${p(now.getUTCDate())} ` +
    `${p(now.getUTCHours())}:${p(now.getUTCMinutes())}:${p(now.getUTCSeconds())}.${p(now.getUTCMilliseconds(), 3)}+0000`;
}

export function lifecycleLine(e: LifecycleEvent): string {
  return `event 'lifecycle' for domain '${e.domain.name}': ${eventName(e.event)} ${eventDetailName(e.event, e.detail)}\n`;
}

type Outcome = 'done' | 'timeout' | 'interrupt';

export const event: Command = {
  name: 'event',
  group: 'Domain Events',
  summary: 'Domain Events',
  options: [
    { name: 'domain', type: 'string', positional: true, help: 'filter by domain name, id or uuid' },
    { name: 'event', type: 'string', positional: true, help: 'which event type to wait for' },
    { name: 'all', type: 'bool', help: 'wait for all events instead of just one type' },
    { name: 'loop', type: 'bool', help: 'loop until timeout or interrupt, rather than one-shot' },
    { name: 'timeout', type: 'number', help: 'timeout seconds' },
    { name: 'list', type: 'bool', help: 'list valid event types' },
    { name: 'timestamp', type: 'bool', help: 'show timestamp for each printed event' },
  ],
  async run(args, io) {
    exclusive(args, 'all', 'event');
    exclusive(args, 'list', 'all');
    exclusive(args, 'list', 'event');
    if (flag(args, 'list')) {
      io.stdout.write(EVENT_TYPES.map((t) => t + '\n').join(''));
      return;
    }
    const wanted = args.event === undefined ? undefined : String(args.event);
    const all = flag(args, 'all');
    if (wanted === undefined && !all) {
      throw new VirtError('INVALID_ARG', 'one of --list, --all, or --event <type> is required');
    }
    if (wanted !== undefined && !EVENT_TYPES.includes(wanted)) throw new VirtError('INVALID_ARG', `unknown event type ${wanted}`);
    let timeoutMs = 0;
    if (args.timeout !== undefined) {
      const t = Number(args.timeout);
      if (!Number.isInteger(t) || t <= 0 || t > Math.floor(0x7fffffff / 1000)) {
        throw new VirtError('INVALID_ARG', `Numeric value '${args.timeout}' for <timeout> option is malformed or out of range`);
      }
      timeoutMs = t * 1000;
    }
    const loop = flag(args, 'loop');
    const stamp = flag(args, 'timestamp');

    const conn = await connect(io);
    let dom: DomainRef | undefined;
    if (args.domain !== undefined) dom = await lookupDomain(conn, String(args.domain));

    let count = 0;
    let finish!: (o: Outcome) => void;
    const outcome = new Promise<Outcome>((resolve) => { finish = resolve; });
    const onEvent = (e: LifecycleEvent) => {
      if (!loop && count) return;
      if (io.json) {
        io.stdout.write(JSON.stringify({
          ...(stamp ? { timestamp: timestamp() } : {}),
          event: 'lifecycle', domain: e.domain.name, uuid: e.domain.uuid,
          type: eventName(e.event), detail: eventDetailName(e.event, e.detail),
        }) + '\n');
      } else {
        io.stdout.write((stamp ? `${timestamp()}: ` : '') + lifecycleLine(e));
      }
      count++;
      if (!loop) finish('done');
    };

    // Only lifecycle events exist in this driver; other types are accepted and never arrive.
    const unsubscribe = all || wanted === 'lifecycle' ? await conn.onLifecycle(onEvent, dom) : undefined;
    const timer = timeoutMs ? setTimeout(() => finish('timeout'), timeoutMs) : undefined;
    const onSigint = () => finish('interrupt');
    process.on('SIGINT', onSigint);
    let why: Outcome;
    try {
      why = await outcome;
    } finally {
      if (timer) clearTimeout(timer);
      process.off('SIGINT', onSigint);
      await unsubscribe?.();
    }
    if (!io.json) {
      if (why === 'interrupt') io.stdout.write('event loop interrupted\n');
      if (why === 'timeout') io.stdout.write('event loop timed out\n');
      io.stdout.write(`events received: ${count}\n`);
    }
    // virsh fails when nothing arrived, without an error message.
    return count ? 0 : 1;
  },
};
