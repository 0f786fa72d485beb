/** GraphQL documents shared by several test files. */
export const JOB_FIELDS = `id type status progress processed total message attempts maxAttempts error trigger idempotencyKey ownerId
  createdAt startedAt finishedAt runAt cancelRequestedAt result`;

export const CREATE_ACCOUNT = `mutation($name: String!) { createAccount(input: { name: $name }) { id } }`;

export const IMPORT_MBOX = `mutation($accountId: ID!, $file: File!, $options: EnqueueOptions) {
  importMbox(accountId: $accountId, file: $file, options: $options) {
    ${JOB_FIELDS}
    input { accountId filename size }
    output { total imported duplicates malformed errors { index error } }
  }
}`;

export const JOB = `query($id: ID!) { job(id: $id) { ${JOB_FIELDS}
  ... on ImportMboxJob { output { total imported duplicates malformed } }
  ... on BulkOperationJob { output { action matched affected } }
} }`;

export const JOB_PROGRESS = `subscription($jobId: ID!) {
  jobProgress(jobId: $jobId) { jobId type status progress processed total message error result at }
}`;
