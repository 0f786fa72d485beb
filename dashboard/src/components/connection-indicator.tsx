import type { ConnectionState } from '../api/resumable-stream';

const LABELS: Record<ConnectionState, string> = {
  live: 'Live',
  connecting: 'Connecting…',
  reconnecting: 'Reconnecting…',
  stopped: 'Stopped',
};

/**
 * Whether the page is following the stream. The page's own indicator carries `data-connection`:
 * `live`, `reconnecting` (also before the first connection) or `stopped` (refused for good; the
 * reason is shown beside it), for tests and automation. A job's detail has its own, without it.
 */
export function ConnectionIndicator({ state, main = true }: { state: ConnectionState; main?: boolean }) {
  const attribute = state === 'connecting' ? 'reconnecting' : state;
  return (
    // Only the page's own indicator is a live region: one "Reconnecting…" is enough.
    <p class={`connection is-${attribute}`} role={main ? 'status' : undefined} data-connection={main ? attribute : undefined}>
      <span class="dot" aria-hidden="true" />
      {LABELS[state]}
    </p>
  );
}
