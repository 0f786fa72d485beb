import {
  type DocumentNode,
  type ExecutionResult,
  type FieldNode,
  type FragmentDefinitionNode,
  GraphQLError,
  getOperationAST,
  Kind,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import { type CompiledQuery, compileQuery, isCompiledQuery } from 'graphql-jit';
import type { Plugin } from 'graphql-yoga';

/**
 * Queries and mutations run compiled (graphql-jit) from a document's second run on: about half a
 * millisecond less per 50-job page, where graphql-js spends most of its time completing each
 * field of each node. A document run once (exploring in GraphiQL, or a stream of unique
 * documents) never pays for a compile. Subscriptions keep the reference executor, which the shared
 * subscription execution drives.
 *
 * Answers stay the reference executor's: field errors get back the locations the compiled code
 * leaves out, and variables the compiled code refuses go to the reference executor, whose error
 * says which value is wrong and where.
 *
 * Register it before any plugin that wraps the execution (spans, the stream anchor's transaction),
 * so they wrap the compiled one.
 */
export function useCompiledExecution(): Plugin {
  /** How often each parsed document (yoga caches them by text) has run, counted up to the compiling run. */
  const runs = new WeakMap<DocumentNode, number>();
  /** Null: the document could not be compiled, and runs on the reference executor. */
  const compiled = new WeakMap<DocumentNode, CompiledQuery | null>();
  return {
    onExecute({ args, executeFn, setExecuteFn }) {
      const { document, operationName } = args;
      const run = (runs.get(document) ?? 0) + 1;
      if (run <= 2) runs.set(document, run);
      const operation = getOperationAST(document, operationName);
      if (run < 2 || !operation || operation.operation === 'subscription' || !hasOneOperation(document)) return;
      let query = compiled.get(document);
      if (query === undefined) {
        const compiling = compileQuery(args.schema, document, operationName ?? undefined);
        query = isCompiledQuery(compiling) ? compiling : null;
        compiled.set(document, query);
      }
      if (!query) return;
      const reference = executeFn;
      const compiledQuery = query;
      setExecuteFn(async (callArgs) => {
        const result: ExecutionResult = await compiledQuery.query(callArgs.rootValue, callArgs.contextValue, callArgs.variableValues);
        // No `data` at all: the variables were refused before anything ran.
        if (!('data' in result)) return reference(callArgs);
        if (!result.errors?.some((error) => error.path && !error.nodes)) return result;
        return { ...result, errors: result.errors.map((error) => withFieldNodes(error, document, operation)) };
      });
    },
  };
}

/** One compiled query per document: a document of several operations runs on the reference executor. */
function hasOneOperation(document: DocumentNode): boolean {
  return document.definitions.filter((definition) => definition.kind === Kind.OPERATION_DEFINITION).length === 1;
}

/** A compiled field error carries its path only; the nodes at that path give it its `locations`. */
function withFieldNodes(error: GraphQLError, document: DocumentNode, operation: OperationDefinitionNode): GraphQLError {
  if (error.nodes || !error.path) return error;
  const nodes = fieldNodesAt(document, operation, error.path);
  if (!nodes.length) return error;
  return new GraphQLError(error.message, { nodes, path: error.path, originalError: error.originalError, extensions: error.extensions });
}

/** The field nodes a response path names (by response key, through fragments); list indexes are skipped. */
function fieldNodesAt(document: DocumentNode, operation: OperationDefinitionNode, path: readonly (string | number)[]): FieldNode[] {
  const fragments = new Map(
    document.definitions
      .filter((definition): definition is FragmentDefinitionNode => definition.kind === Kind.FRAGMENT_DEFINITION)
      .map((fragment) => [fragment.name.value, fragment]),
  );
  let sets: SelectionSetNode[] = [operation.selectionSet];
  let nodes: FieldNode[] = [];
  for (const key of path) {
    if (typeof key === 'number') continue;
    nodes = [];
    const spread = new Set<string>();
    const collect = (set: SelectionSetNode) => {
      for (const selection of set.selections) {
        if (selection.kind === Kind.FIELD) {
          if ((selection.alias ?? selection.name).value === key) nodes.push(selection);
        } else if (selection.kind === Kind.INLINE_FRAGMENT) {
          collect(selection.selectionSet);
        } else if (!spread.has(selection.name.value)) {
          spread.add(selection.name.value);
          const fragment = fragments.get(selection.name.value);
          if (fragment) collect(fragment.selectionSet);
        }
      }
    };
    for (const set of sets) collect(set);
    sets = nodes.flatMap((node) => (node.selectionSet ? [node.selectionSet] : []));
  }
  return nodes;
}
