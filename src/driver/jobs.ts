/**
 * Per-domain job serialisation: operations on one domain run one after another, operations
 * on different domains run side by side (libvirt's domain job lock). Long jobs record their
 * progress for virDomainGetJobInfo.
 */

/** virDomainJobType */
export const JobType = { NONE: 0, BOUNDED: 1, UNBOUNDED: 2, COMPLETED: 3, FAILED: 4, CANCELLED: 5 } as const;

export interface JobProgress {
  kind: string;
  startedAt: number;
  /** bytes */
  total: number;
  processed: number;
}

export class Jobs {
  private tails = new Map<string, Promise<unknown>>();
  readonly progress = new Map<string, JobProgress>();

  /** Run fn after every earlier job on `key` has finished. */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }

  /** Record progress of a long job on `key` while fn runs. */
  async track<T>(key: string, kind: string, fn: (progress: (processed: number, total: number) => void) => Promise<T>): Promise<T> {
    const p: JobProgress = { kind, startedAt: Date.now(), total: 0, processed: 0 };
    this.progress.set(key, p);
    try {
      return await fn((processed, total) => {
        p.processed = processed;
        p.total = total;
      });
    } finally {
      if (this.progress.get(key) === p) this.progress.delete(key);
    }
  }
}
