import { useEffect, useState } from 'preact/hooks';
import { JobTypeChanges, Overview } from '../api/documents';
import { type GraphQLRequestError, request, subscribe } from '../api/graphql';
import type { Session } from '../api/session';
import type { Account, JobTypeInfo, Schedule } from './types';

export interface OverviewState {
  jobTypes: JobTypeInfo[];
  schedules: Schedule[];
  accounts: Account[];
  loaded: boolean;
  error: GraphQLRequestError | null;
}

/** How often the catalogue, schedules and accounts are read again: next runs move on. */
const REFRESH_MS = 30_000;

/** How long a dropped `jobTypeChanged` stream waits before it is opened again (and the catalogue read again). */
const RESUBSCRIBE_MS = 2_000;

/**
 * The catalogue (with paused types, live from `jobTypeChanged`), the schedules and the caller's
 * accounts, refreshed every half minute.
 */
export function useOverview(session: Session): OverviewState {
  const [state, setState] = useState<OverviewState>({ jobTypes: [], schedules: [], accounts: [], loaded: false, error: null });
  useEffect(() => {
    let stopped = false;
    const load = async () => {
      try {
        const data = await request<{ jobTypes: JobTypeInfo[]; schedules: Schedule[]; accounts: Account[] }>(session.token, Overview);
        if (!stopped) setState({ ...data, loaded: true, error: null });
      } catch (error) {
        if (!stopped) setState((previous) => ({ ...previous, error: error as GraphQLRequestError }));
      }
    };
    void load();
    const timer = setInterval(load, REFRESH_MS);
    // The stream has no cursor: after a drop, the catalogue is read again for what it missed.
    let unsubscribe: () => void = () => {};
    let retry: ReturnType<typeof setTimeout> | null = null;
    const follow = () => {
      unsubscribe = subscribe<{ jobTypeChanged: { name: string; paused: boolean } }>(
        session.token,
        JobTypeChanges,
        {},
        {
          next: ({ jobTypeChanged: changed }) =>
            setState((previous) => ({
              ...previous,
              jobTypes: previous.jobTypes.map((type) => (type.name === changed.name ? { ...type, paused: changed.paused } : type)),
            })),
          error: () => {
            if (stopped) return;
            retry = setTimeout(() => {
              void load();
              follow();
            }, RESUBSCRIBE_MS);
          },
          complete: () => {},
        },
      );
    };
    follow();
    return () => {
      stopped = true;
      clearInterval(timer);
      if (retry) clearTimeout(retry);
      unsubscribe();
    };
  }, [session]);
  return state;
}
