import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { forgetSession, restoreSession, type Session, saveSession } from '../api/session';
import { JobListModel } from '../model/job-list';
import { useStore } from '../model/store';
import type { JobListFilter } from '../model/types';
import { useOverview } from '../model/overview';
import { ConnectionIndicator } from './connection-indicator';
import { JobCounts } from './job-counts';
import { JobDetailPanel } from './job-detail-panel';
import { JobFilters } from './job-filters';
import { JobTable } from './job-table';
import { Schedules } from './schedules';
import { LinkSignIn, SignIn } from './sign-in';
import { StartJob } from './start-job';
import { ThroughputChart } from './throughput-chart';

/** Signed in: the dashboard; otherwise the sign-in form (also after the API refused the token). */
export function App() {
  const [restored] = useState(restoreSession);
  const [session, setSession] = useState<Session | null>(restored.session);
  const [offered, setOffered] = useState<Session | null>(restored.offered);
  const [notice, setNotice] = useState<string | null>(null);
  // A link opened in this tab changes only the fragment: no page load, so it is read here too.
  useEffect(() => {
    const onHashChange = () => {
      const { offered: linked } = restoreSession();
      if (linked) setOffered(linked);
    };
    window.addEventListener('hashchange', onHashChange);
    return () => window.removeEventListener('hashchange', onHashChange);
  }, []);
  if (offered)
    return (
      <LinkSignIn
        offered={offered}
        current={session}
        onChoose={(use) => {
          if (use) setSession(saveSession(offered.token));
          setOffered(null);
        }}
      />
    );
  if (!session)
    return (
      <SignIn
        notice={notice}
        onSignIn={(next) => {
          setNotice(null);
          setSession(next);
        }}
      />
    );
  return (
    <Dashboard
      key={session.token}
      session={session}
      onSignOut={(reason) => {
        forgetSession();
        setNotice(reason);
        setSession(null);
      }}
    />
  );
}

const NO_FILTER: JobListFilter = { types: [], statuses: [], tags: [] };

function Dashboard({ session, onSignOut }: { session: Session; onSignOut(reason: string | null): void }) {
  const [filter, setFilter] = useState<JobListFilter>(NO_FILTER);
  const list = useMemo(() => new JobListModel(session, filter), [session, filter]);
  useEffect(() => {
    void list.start();
    return () => list.stop();
  }, [list]);
  useStore(list);
  const overview = useOverview(session);
  // Signed in: the page's title takes the focus the sign-in form had.
  const title = useRef<HTMLHeadingElement>(null);
  useEffect(() => title.current?.focus(), []);
  const [openJob, setOpenJob] = useState<{ id: string; typename: string | null } | null>(null);
  const open = useCallback((id: string, typename: string | null) => setOpenJob({ id, typename }), []);
  const closeJob = useCallback(() => setOpenJob(null), []);

  const refused = list.error ?? overview.error;
  useEffect(() => {
    if (refused?.code === 'UNAUTHENTICATED') onSignOut('The API refused your token (expired or invalid): sign in again.');
  }, [refused, onSignOut]);

  return (
    <div class={openJob ? 'layout has-detail' : 'layout'}>
      <header class="top">
        <h1 tabIndex={-1} ref={title}>
          Jobwire
        </h1>
        <p class="who">
          Signed in as <strong>{session.subject}</strong> {session.admin ? '(admin: every owner’s jobs)' : '(your jobs)'}
        </p>
        <ConnectionIndicator state={list.connection} />
        <nav aria-label="Elsewhere">
          <a href="/graphql">GraphiQL</a>
        </nav>
        <button type="button" onClick={() => onSignOut(null)}>
          Sign out
        </button>
      </header>
      {refused && refused.code !== 'UNAUTHENTICATED' && (
        <p role="alert" class="error">
          {refused.message} <code>{refused.code}</code>
        </p>
      )}
      <main class="main">
        <section class="panel counts" aria-labelledby="counts-heading">
          <h2 id="counts-heading">Jobs by status</h2>
          <JobCounts list={list} jobTypes={overview.jobTypes} />
        </section>
        <section class="panel chart" aria-labelledby="throughput-heading">
          <h2 id="throughput-heading">Throughput, last hour</h2>
          <ThroughputChart list={list} />
        </section>
        <section class="panel jobs" aria-labelledby="jobs-heading">
          <h2 id="jobs-heading" tabIndex={-1}>
            Jobs
          </h2>
          <JobFilters filter={filter} onChange={setFilter} />
          <JobTable list={list} showOwner={session.admin} onOpen={open} />
        </section>
        <section class="panel start" aria-labelledby="start-heading">
          <h2 id="start-heading">Start a job</h2>
          <StartJob
            session={session}
            accounts={{ list: overview.loaded ? overview.accounts : null, error: overview.error?.message ?? null }}
            onStarted={open}
          />
        </section>
        <section class="panel schedules" aria-labelledby="schedules-heading">
          <h2 id="schedules-heading">Schedules</h2>
          <Schedules schedules={overview.schedules} loaded={overview.loaded} />
        </section>
      </main>
      {openJob && <JobDetailPanel key={openJob.id} session={session} jobId={openJob.id} typename={openJob.typename} onClose={closeJob} />}
    </div>
  );
}
