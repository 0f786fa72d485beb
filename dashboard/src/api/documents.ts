import jobDetail from '../operations/job-detail.graphql';
import jobs from '../operations/jobs.graphql';
import overview from '../operations/overview.graphql';

/** One operation by name; a name missing from its document fails when the page loads, not later. */
function operation(documents: Record<string, string>, name: string): string {
  const text = documents[name];
  if (!text) throw new Error(`no operation ${name} in the dashboard's GraphQL documents`);
  return text;
}

/**
 * An operation that spreads `...TypedJob`, for one concrete job type (its typed input and output),
 * or without them for a type the build did not know.
 */
function typedOperation(documents: Record<string, string>, name: string): (typename: string | null) => string {
  const generic = operation(documents, name);
  return (typename) => (typename && documents[`${name}@${typename}`]) || generic;
}

export const JobList = operation(jobs, 'JobList');
export const JobChanges = operation(jobs, 'JobChanges');
export const RetryJobs = operation(jobs, 'RetryJobs');
export const JobDetailSnapshot = typedOperation(jobDetail, 'JobDetailSnapshot');
export const JobDetailChanges = typedOperation(jobDetail, 'JobDetailChanges');
export const JobLogLines = operation(jobDetail, 'JobLogLines');
export const CancelJob = operation(jobDetail, 'CancelJob');
export const RetryJob = operation(jobDetail, 'RetryJob');
export const Overview = operation(overview, 'Overview');
export const TokenCheck = operation(overview, 'TokenCheck');
export const JobTypeChanges = operation(overview, 'JobTypeChanges');
