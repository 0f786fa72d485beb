import type { EntityManager } from '@mikro-orm/postgresql';
import type { Viewer } from '../auth/tokens.js';
import type { Services } from '../services.js';

/** Per-operation context: the authenticated caller and a request-scoped entity manager. */
export interface GraphQLContext {
  viewer: Viewer;
  services: Services;
  em: EntityManager;
  /** An SSE reconnect's `Last-Event-ID`: the cursor of the last event the client got, where its subscription resumes. */
  lastEventId?: string | null;
}
