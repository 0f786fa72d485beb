import { useEffect, useState } from 'preact/hooks';

/**
 * A model the page renders from. Changes are announced at most once per frame: a busy stream
 * (hundreds of changes a second) becomes one render per frame, not one per event.
 */
export class Store {
  private readonly listeners = new Set<() => void>();
  private scheduled = false;

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  protected changed(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setTimeout(() => {
      this.scheduled = false;
      for (const listener of this.listeners) listener();
    }, 16);
  }
}

/** Re-renders the component whenever the store announces a change. */
export function useStore<S extends Store>(store: S): S {
  const [, setTick] = useState(0);
  useEffect(() => store.subscribe(() => setTick((tick) => tick + 1)), [store]);
  return store;
}
