import type { ConnectionState } from '../api/resumable-stream';

/**
 * Whether the page is following the stream. `data-connection` is `live` or `reconnecting` (also
 * before the first connection), for tests and automation.
 */
export function ConnectionIndicator({ state }: { state: ConnectionState }) {
  const live = state === 'live';
  return (
    <p class={`connection ${live ? 'is-live' : 'is-reconnecting'}`} role="status" data-connection={live ? 'live' : 'reconnecting'}>
      <span class="dot" aria-hidden="true" />
      {live ? 'Live' : state === 'connecting' ? 'Connecting…' : 'Reconnecting…'}
    </p>
  );
}
