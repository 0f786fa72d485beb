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
import { isUuid } from '../engine/validation.js';

/** Deeper JSON than this in a variable is refused rather than walked. */
const MAX_DEPTH = 64;

function badInput(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT' } });
}

/**
 * Rules every input of the API obeys, checked once before any resolver runs, so no field has to
 * repeat them and nothing is written when they fail:
 * - every `ID` argument or input field is a UUID (every id in Jobwire is a database UUID);
 * - no string anywhere in the input, JSON included, holds a NUL character or a lone surrogate
 *   (PostgreSQL text and jsonb can store neither);
 * - a file (multipart upload) is only where the type is File.
 * IDs are then lower-cased, as the API prints them, so `AAAA…` and `aaaa…` name the same job
 * everywhere (pub/sub channels and filters compare strings, not UUIDs).
 */
export function useInputGuards(): Plugin {
  const guard = ({ args, setResultAndStopExecution }: { args: ExecutionArgs; setResultAndStopExecution: (result: never) => void }) => {
    const operation = getOperationAST(args.document, args.operationName);
    if (!operation) return;
    try {
      const variables = guardedVariables(args, operation);
      const literals = literalsOf(args, operation);
      if (literals.problem) throw literals.problem;
      (args as { variableValues: typeof variables }).variableValues = variables;
      (args as { document: DocumentNode }).document = literals.document;
    } catch (problem) {
      if (!(problem instanceof GraphQLError)) throw problem;
      setResultAndStopExecution({ errors: [problem] } as never);
    }
  };
  return { onExecute: guard, onSubscribe: guard };
}

/** The operation's variables, checked and with their IDs lower-cased; throws the first problem. */
function guardedVariables(args: ExecutionArgs, operation: OperationDefinitionNode): ExecutionArgs['variableValues'] {
  if (!args.variableValues) return args.variableValues;
  const variables: Record<string, unknown> = { ...args.variableValues };
  for (const definition of operation.variableDefinitions ?? []) {
    const name = definition.variable.name.value;
    const type = typeFromAST(args.schema, definition.type) as GraphQLInputType | undefined;
    if (type && variables[name] !== undefined) variables[name] = guardedValue(type, variables[name], `$${name}`, 0);
  }
  return variables;
}

/** What the operation's literals say, worked out once per parsed document (yoga caches those). */
interface LiteralCheck {
  problem: GraphQLError | null;
  /** The operation and the fragments it reaches, ID literals lower-cased: what gets executed. */
  document: DocumentNode;
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
    check = checkLiterals(args, operation);
    byOperation.set(key, check);
  }
  return check;
}

/** One pass over what runs: finds the first bad literal and lower-cases the ID literals. */
function checkLiterals(args: ExecutionArgs, operation: OperationDefinitionNode): LiteralCheck {
  let problem: GraphQLError | null = null;
  const typeInfo = new TypeInfo(args.schema);
  const document = visit(
    executedPart(args.document, operation),
    visitWithTypeInfo(typeInfo, {
      StringValue(node) {
        if (problem) return undefined;
        const unstorable = whyUnstorable(node.value);
        if (unstorable) problem = badInput(unstorable);
        else if (isIdType(typeInfo.getInputType())) {
          if (!isUuid(node.value)) problem = badInput('an ID argument is not a UUID');
          else if (node.value !== node.value.toLowerCase()) return { ...node, value: node.value.toLowerCase() };
        }
        return undefined;
      },
      IntValue(node) {
        if (!problem && isIdType(typeInfo.getInputType())) problem = badInput(`an ID argument is not a UUID: ${node.value.slice(0, 20)}`);
      },
    }),
  );
  return { problem, document };
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

function isIdType(type: GraphQLInputType | null | undefined): boolean {
  const named = type ? getNamedType(type) : null;
  return named !== null && named !== undefined && isScalarType(named) && named.name === 'ID';
}

/** A variable's value, checked against its type, with IDs lower-cased; throws the first problem. */
function guardedValue(type: GraphQLInputType, value: unknown, path: string, depth: number): unknown {
  if (value === null || value === undefined) return value;
  if (depth > MAX_DEPTH) throw badInput(`${path}: nested too deeply`);
  const nullable = getNullableType(type) as GraphQLInputType;
  if (isListType(nullable)) {
    const item = nullable.ofType as GraphQLInputType;
    // A single value where a list is expected is coerced to a list of one by GraphQL.
    if (!Array.isArray(value)) return guardedValue(item, value, `${path}[0]`, depth + 1);
    return value.map((entry, index) => guardedValue(item, entry, `${path}[${index}]`, depth + 1));
  }
  if (isInputObjectType(nullable)) {
    if (!isPlainObject(value)) {
      // Only a multipart upload puts anything but plain JSON into variables.
      if (typeof value === 'object') throw badInput(misplacedFile(path));
      return value;
    }
    const fields = nullable.getFields();
    return Object.fromEntries(
      Object.entries(value).map(([name, entry]) => [
        name,
        fields[name] ? guardedValue(fields[name].type, entry, `${path}.${name}`, depth + 1) : entry,
      ]),
    );
  }
  if (isScalarType(nullable) && nullable.name === 'File') return value;
  if (isScalarType(nullable) && nullable.name === 'ID' && (typeof value === 'string' || typeof value === 'number')) {
    if (!isUuid(String(value))) throw badInput(`${path}: not a UUID`);
    return typeof value === 'string' ? value.toLowerCase() : value;
  }
  const problem = findUnstorable(value, path, depth);
  if (problem) throw problem;
  return value;
}

/** Why PostgreSQL could not store a string, or null when it can. */
function whyUnstorable(text: string): string | null {
  if (text.includes('\u0000')) return 'strings may not contain NUL (\\u0000) characters';
  if (!text.isWellFormed()) return 'strings may not contain lone surrogates (\\uD800 to \\uDFFF without their pair)';
  return null;
}

/** Walks plain JSON (strings, arrays, plain objects); anything else is a file where none belongs. */
function findUnstorable(value: unknown, path: string, depth: number): GraphQLError | null {
  if (depth > MAX_DEPTH) return badInput(`${path}: nested too deeply`);
  if (typeof value === 'string') {
    const unstorable = whyUnstorable(value);
    return unstorable ? badInput(`${path}: ${unstorable}`) : null;
  }
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = findUnstorable(item, path, depth + 1);
      if (problem) return problem;
    }
    return null;
  }
  if (typeof value === 'object' && value !== null && !isPlainObject(value)) return badInput(misplacedFile(path));
  if (isPlainObject(value)) {
    for (const [key, item] of Object.entries(value)) {
      const unstorableKey = whyUnstorable(key);
      const problem = unstorableKey ? badInput(`${path}: keys: ${unstorableKey}`) : findUnstorable(item, path, depth + 1);
      if (problem) return problem;
    }
  }
  return null;
}

/**
 * A file mapped (multipart `map`) to a variable that is not a File: refused here, where graphql-js
 * would coerce it, print the file object's internals in its message, or, as a JSON value, store
 * its bytes as an array of numbers.
 */
function misplacedFile(path: string): string {
  return `${path}: a file may be sent only where the type is File`;
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
