import {
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  getNamedType,
  getNullableType,
  getOperationAST,
  GraphQLError,
  type GraphQLInputType,
  type GraphQLSchema,
  isInputObjectType,
  isListType,
  Kind,
  print,
  TypeInfo,
  typeFromAST,
  type ValueNode,
  visit,
  visitWithTypeInfo,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';

/** Marks an input field whose value is a secret (a password): `t.string({ extensions: SECRET_INPUT })`. */
export const SECRET_INPUT = { secret: true } as const;

const REDACTED = '"<redacted>"';
const MAX_DEPTH = 64;

/**
 * graphql-js quotes a variable back to its sender when it cannot coerce it ("Variable "$input"
 * got invalid value { host: …, password: "hunter2" }; Field "user" … was not provided"), and a
 * literal of the wrong type when validating (`password: 1234`). Such a message goes to client-side
 * logs and error trackers, so the values of secret input fields are taken out of every error of a
 * result, or of a validation, that has errors. Only then are the variables or the document walked:
 * an operation without errors costs nothing.
 */
export function useSecretInputs(): Plugin {
  const scrub = (args: ExecutionArgs, result: unknown, setResult: (result: ExecutionResult) => void) => {
    const errors = (result as ExecutionResult | null)?.errors;
    if (!errors?.length || !args.variableValues) return;
    const secrets = secretsIn(args);
    if (secrets.length === 0) return;
    setResult({ ...(result as ExecutionResult), errors: errors.map((error) => withoutSecrets(error, secrets)) });
  };
  return {
    onValidate:
      ({ params }) =>
      ({ valid, result, setResult }) => {
        if (valid) return;
        const secrets = secretLiteralsIn(params.schema, params.documentAST);
        if (secrets.length === 0) return;
        setResult(result.map((error) => (error instanceof GraphQLError ? withoutSecrets(error, secrets) : error)));
      },
    onExecute: ({ args }) => ({ onExecuteDone: ({ result, setResult }) => scrub(args, result, setResult as never) }),
    onSubscribe: ({ args }) => ({ onSubscribeResult: ({ result, setResult }) => scrub(args, result, setResult as never) }),
  };
}

/** The forms in which the operation's secret values can appear in a message, longest first. */
function secretsIn(args: ExecutionArgs): string[] {
  const operation = getOperationAST(args.document, args.operationName);
  const found = new Set<string>();
  for (const definition of operation?.variableDefinitions ?? []) {
    const type = typeFromAST(args.schema, definition.type) as GraphQLInputType | undefined;
    if (type) collect(type, args.variableValues?.[definition.variable.name.value], false, found, 0);
  }
  return [...found].sort((a, b) => b.length - a.length);
}

/** The document's literal values of secret input fields, as graphql-js prints them, longest first. */
function secretLiteralsIn(schema: GraphQLSchema, document: DocumentNode): string[] {
  const found = new Set<string>();
  const typeInfo = new TypeInfo(schema);
  const leaves = (value: ValueNode): void => {
    if (value.kind === Kind.LIST) value.values.forEach(leaves);
    else if (value.kind === Kind.OBJECT) for (const field of value.fields) leaves(field.value);
    else if (value.kind !== Kind.VARIABLE && value.kind !== Kind.NULL) found.add(print(value));
  };
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      ObjectField(node) {
        const parent = getNamedType(typeInfo.getParentInputType() ?? undefined);
        if (isInputObjectType(parent) && parent.getFields()[node.name.value]?.extensions.secret === true) leaves(node.value);
      },
    }),
  );
  return [...found].sort((a, b) => b.length - a.length);
}

function collect(type: GraphQLInputType, value: unknown, secret: boolean, found: Set<string>, depth: number): void {
  if (value === null || value === undefined || depth > MAX_DEPTH) return;
  if (secret) {
    // graphql-js prints strings quoted (JSON), other leaves as they are.
    if (typeof value === 'string') found.add(JSON.stringify(value));
    else if (typeof value === 'number' || typeof value === 'boolean') found.add(String(value));
    else if (typeof value === 'object') for (const item of Object.values(value)) collect(type, item, true, found, depth + 1);
    return;
  }
  const nullable = getNullableType(type) as GraphQLInputType;
  if (isListType(nullable)) {
    for (const item of Array.isArray(value) ? value : [value]) collect(nullable.ofType, item, false, found, depth + 1);
  } else if (isInputObjectType(nullable) && typeof value === 'object') {
    const fields = nullable.getFields();
    for (const [name, item] of Object.entries(value)) {
      const field = fields[name];
      if (field) collect(field.type, item, field.extensions.secret === true, found, depth + 1);
    }
  }
}

function withoutSecrets(error: GraphQLError, secrets: readonly string[]): GraphQLError {
  let message = error.message;
  for (const secret of secrets) message = message.split(secret).join(REDACTED);
  if (message === error.message) return error;
  // Without its originalError: that is the scalar's own refusal, which may quote the value too (and would be logged).
  return new GraphQLError(message, { nodes: error.nodes, path: error.path, extensions: error.extensions });
}
