import {
  type ASTNode,
  type DocumentNode,
  type ExecutionArgs,
  type FragmentDefinitionNode,
  Kind,
  type OperationDefinitionNode,
  getNamedType,
  getNullableType,
  getOperationAST,
  GraphQLError,
  type GraphQLInputType,
  isInputObjectType,
  isListType,
  isScalarType,
  TypeInfo,
  typeFromAST,
  visit,
  visitWithTypeInfo,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Deeper JSON than this in a variable is refused rather than walked. */
const MAX_DEPTH = 64;

function badInput(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT' } });
}

/**
 * Rules every input of the API obeys, checked once before any resolver runs, so no field has to
 * repeat them and nothing is written when they fail:
 * - every `ID` argument or input field is a UUID (every id in Jobwire is a database UUID);
 * - no string anywhere in the input, JSON included, holds a NUL character (PostgreSQL text cannot).
 * IDs are then lower-cased, as the API prints them, so `AAAA…` and `aaaa…` name the same job
 * everywhere (pub/sub channels and filters compare strings, not UUIDs).
 */
export function useInputGuards(): Plugin {
  const guard = ({ args, setResultAndStopExecution }: { args: ExecutionArgs; setResultAndStopExecution: (result: never) => void }) => {
    const problem = findInputProblem(args);
    if (problem) setResultAndStopExecution({ errors: [problem] } as never);
    else lowerCaseIds(args);
  };
  return { onExecute: guard, onSubscribe: guard };
}

/** The first input rule the operation breaks, or null. */
export function findInputProblem(args: ExecutionArgs): GraphQLError | null {
  const operation = getOperationAST(args.document, args.operationName);
  if (!operation) return null;
  for (const definition of operation.variableDefinitions ?? []) {
    const type = typeFromAST(args.schema, definition.type) as GraphQLInputType | undefined;
    const value = args.variableValues?.[definition.variable.name.value];
    const problem = type ? checkValue(type, value, `$${definition.variable.name.value}`, 0) : null;
    if (problem) return problem;
  }
  return literalsOf(args, operation).problem;
}

/** What the document's literals say, worked out once per parsed document (yoga caches those). */
interface LiteralCheck {
  problem: GraphQLError | null;
  /** The document with its ID literals lower-cased (the same object when none needed it). */
  lowered: DocumentNode;
}

const literalChecks = new WeakMap<DocumentNode, Map<string, LiteralCheck>>();

function literalsOf(args: ExecutionArgs, operation: OperationDefinitionNode): LiteralCheck {
  let byOperation = literalChecks.get(args.document);
  if (!byOperation) {
    byOperation = new Map();
    literalChecks.set(args.document, byOperation);
  }
  const key = args.operationName ?? '';
  let check = byOperation.get(key);
  if (!check) {
    check = { problem: literalProblem(args, operation), lowered: lowerCaseIdLiterals(args) };
    byOperation.set(key, check);
  }
  return check;
}

function literalProblem(args: ExecutionArgs, operation: OperationDefinitionNode): GraphQLError | null {
  let problem: GraphQLError | null = null;
  const typeInfo = new TypeInfo(args.schema);
  visit(
    executedPart(args.document, operation),
    visitWithTypeInfo(typeInfo, {
      StringValue(node) {
        if (problem) return;
        if (node.value.includes('\u0000')) problem = badInput('strings may not contain NUL (\\u0000) characters');
        else if (isIdType(typeInfo.getInputType()) && !UUID.test(node.value)) problem = badInput('an ID argument is not a UUID');
      },
      IntValue(node) {
        if (!problem && isIdType(typeInfo.getInputType())) problem = badInput(`an ID argument is not a UUID: ${node.value.slice(0, 20)}`);
      },
    }),
  );
  return problem;
}

/** The operation that runs and the fragments it reaches: other operations in the document are not the guard's business. */
function executedPart(document: DocumentNode, operation: OperationDefinitionNode): DocumentNode {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const used = new Map<string, FragmentDefinitionNode>();
  const pending: ASTNode[] = [operation];
  while (pending.length > 0) {
    visit(pending.pop()!, {
      FragmentSpread(spread) {
        const fragment = fragments.get(spread.name.value);
        if (fragment && !used.has(spread.name.value)) {
          used.set(spread.name.value, fragment);
          pending.push(fragment);
        }
      },
    });
  }
  return { kind: Kind.DOCUMENT, definitions: [operation, ...used.values()] };
}

/** Rewrites the operation's ID inputs (variables and literals) to lower case, in place. */
function lowerCaseIds(args: ExecutionArgs): void {
  const operation = getOperationAST(args.document, args.operationName);
  if (!operation) return;
  if (args.variableValues) {
    const variables = { ...args.variableValues };
    for (const definition of operation.variableDefinitions ?? []) {
      const name = definition.variable.name.value;
      const type = typeFromAST(args.schema, definition.type) as GraphQLInputType | undefined;
      if (type && variables[name] !== undefined) variables[name] = lowerCaseIdValue(type, variables[name], 0);
    }
    (args as { variableValues: Record<string, unknown> }).variableValues = variables;
  }
  (args as { document: DocumentNode }).document = literalsOf(args, operation).lowered;
}

function lowerCaseIdLiterals(args: ExecutionArgs): DocumentNode {
  const typeInfo = new TypeInfo(args.schema);
  return visit(
    args.document,
    visitWithTypeInfo(typeInfo, {
      StringValue(node) {
        return isIdType(typeInfo.getInputType()) && node.value !== node.value.toLowerCase()
          ? { ...node, value: node.value.toLowerCase() }
          : undefined;
      },
    }),
  );
}

function lowerCaseIdValue(type: GraphQLInputType, value: unknown, depth: number): unknown {
  if (value === null || value === undefined || depth > MAX_DEPTH) return value;
  const nullable = getNullableType(type) as GraphQLInputType;
  if (isListType(nullable)) {
    const item = nullable.ofType as GraphQLInputType;
    return Array.isArray(value) ? value.map((entry) => lowerCaseIdValue(item, entry, depth + 1)) : lowerCaseIdValue(item, value, depth + 1);
  }
  if (isInputObjectType(nullable) && isPlainObject(value)) {
    const fields = nullable.getFields();
    return Object.fromEntries(
      Object.entries(value).map(([name, entry]) => [name, fields[name] ? lowerCaseIdValue(fields[name].type, entry, depth + 1) : entry]),
    );
  }
  return isScalarType(nullable) && nullable.name === 'ID' && typeof value === 'string' ? value.toLowerCase() : value;
}

function isIdType(type: GraphQLInputType | null | undefined): boolean {
  const named = type ? getNamedType(type) : null;
  return named !== null && named !== undefined && isScalarType(named) && named.name === 'ID';
}

function checkValue(type: GraphQLInputType, value: unknown, path: string, depth: number): GraphQLError | null {
  if (value === null || value === undefined) return null;
  if (depth > MAX_DEPTH) return badInput(`${path}: nested too deeply`);
  const nullable = getNullableType(type) as GraphQLInputType;
  if (isListType(nullable)) {
    const items = Array.isArray(value) ? value : [value];
    for (let index = 0; index < items.length; index++) {
      const problem = checkValue(nullable.ofType as GraphQLInputType, items[index], `${path}[${index}]`, depth + 1);
      if (problem) return problem;
    }
    return null;
  }
  if (isInputObjectType(nullable)) {
    if (!isPlainObject(value)) return null;
    const fields = nullable.getFields();
    for (const [name, fieldValue] of Object.entries(value)) {
      const field = fields[name];
      const problem = field ? checkValue(field.type, fieldValue, `${path}.${name}`, depth + 1) : null;
      if (problem) return problem;
    }
    return null;
  }
  if (isScalarType(nullable) && nullable.name === 'ID' && (typeof value === 'string' || typeof value === 'number')) {
    return UUID.test(String(value)) ? null : badInput(`${path}: not a UUID`);
  }
  return findNul(value, path, depth);
}

/** Walks plain JSON (strings, arrays, plain objects); uploads and other objects are left alone. */
function findNul(value: unknown, path: string, depth: number): GraphQLError | null {
  if (depth > MAX_DEPTH) return badInput(`${path}: nested too deeply`);
  if (typeof value === 'string')
    return value.includes('\u0000') ? badInput(`${path}: strings may not contain NUL (\\u0000) characters`) : null;
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = findNul(item, path, depth + 1);
      if (problem) return problem;
    }
    return null;
  }
  if (isPlainObject(value)) {
    for (const [key, item] of Object.entries(value)) {
      const problem = key.includes('\u0000') ? badInput(`${path}: keys may not contain NUL characters`) : findNul(item, path, depth + 1);
      if (problem) return problem;
    }
  }
  return null;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * A request yoga cannot even parse (broken JSON in `variables`, a multipart `map` of the wrong
 * shape) is the caller's mistake: a 400 with code BAD_REQUEST and a short message, not an
 * unexpected error with the parser's stack in the log.
 */
export function useRequestParseErrors(): Plugin {
  return {
    onRequestParse({ requestParser, setRequestParser }) {
      if (!requestParser) return;
      setRequestParser(async (request) => {
        try {
          return await requestParser(request);
        } catch (error) {
          if (error instanceof GraphQLError) throw error;
          throw new GraphQLError(`malformed GraphQL request: ${error instanceof Error ? error.message.slice(0, 120) : 'unreadable'}`, {
            extensions: { code: 'BAD_REQUEST', http: { status: 400 } },
          });
        }
      });
    },
  };
}
