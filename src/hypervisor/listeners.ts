/** The event listener set every backend keeps for its driver(s). */
import type { BackendEvent } from './backend.js';

export type BackendListener = (e: BackendEvent) => void | Promise<void>;

export class BackendListeners {
  private readonly set = new Set<BackendListener>();

  /** Returns the function that removes `listener`. */
  add(listener: BackendListener): () => void {
    this.set.add(listener);
    return () => { this.set.delete(listener); };
  }

  /**
   * Delivers to each listener in turn, awaiting it (the driver records an event before the
   * next one). A listener's failure (another process acted first, say) is its own: delivery
   * to the rest goes on.
   */
  async emit(e: BackendEvent): Promise<void> {
    for (const l of [...this.set]) {
      try {
        await l(e);
      } catch {
        // see above
      }
    }
  }

  clear(): void { this.set.clear(); }
}
