import { useEffect, useState } from 'preact/hooks';
import { Overview } from '../api/documents';
import { type GraphQLRequestError, request } from '../api/graphql';
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

/** The catalogue (with paused types), the schedules and the caller's accounts, refreshed every half minute. */
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
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [session]);
  return state;
}
