/// <reference types="vite/client" />

declare module '*.graphql' {
  /** Each operation's text by its name, with the fragments it uses; checked against schema.graphql at build. */
  const operations: Record<string, string>;
  export default operations;
}

declare module 'virtual:job-catalogue' {
  import type { JobForm } from '../build/graphql-documents';
  export const jobForms: JobForm[];
  /** The catalogue's names (`JobTypeName`), e.g. `import_mbox`. */
  export const jobTypeNames: string[];
}
