import { readFileSync } from 'node:fs';
import {
  buildSchema,
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputField,
  type GraphQLInputType,
  GraphQLInputObjectType,
  GraphQLEnumType,
  GraphQLList,
  GraphQLNonNull,
  type GraphQLObjectType,
  type GraphQLSchema,
  getNamedType,
  isInterfaceType,
  isLeafType,
  isNonNullType,
  isObjectType,
  isUnionType,
  type ASTNode,
  type FragmentDefinitionNode,
  Kind,
  parse,
  print,
  validate,
  visit,
} from 'graphql';
import type { Plugin } from 'vite';

/**
 * The dashboard's GraphQL, checked at build time against the committed `schema.graphql`:
 *
 * - `import docs from './x.graphql'` gives each operation's text by name (with the fragments it
 *   uses); a document that does not validate fails the build, so a renamed field breaks
 *   `npm run build`, not a dashboard in production.
 * - A document may spread the fragments of the shared file (`fragments.graphql`) as if they were
 *   its own: the ones it uses are appended.
 * - A document may spread `...TypedJob`: it is then built once per concrete job type, selecting
 *   that type's typed `input` and `output` (`Operation@ImportMboxJob`), and once without.
 * - `virtual:job-catalogue` lists each job mutation with its arguments as the schema declares them,
 *   for the forms that start jobs, and the mutation document each form sends; and the catalogue's
 *   names (`JobTypeName`), for the filters.
 */
export function jobwireGraphQL(options: { schemaPath: string; sharedFragmentsPath: string }): Plugin {
  let schema: GraphQLSchema | null = null;
  const load = () => {
    schema ??= buildSchema(readFileSync(options.schemaPath, 'utf8'));
    return schema;
  };
  const CATALOGUE = 'virtual:job-catalogue';
  return {
    name: 'jobwire-graphql',
    resolveId: (id) => (id === CATALOGUE ? `\0${CATALOGUE}` : null),
    load(id) {
      if (id === `\0${CATALOGUE}`) {
        this.addWatchFile(options.schemaPath);
        const names = load().getType('JobTypeName');
        const jobTypeNames = names instanceof GraphQLEnumType ? names.getValues().map((value) => value.name) : [];
        return [
          `export const jobForms = ${JSON.stringify(jobFormsOf(load()))};`,
          `export const jobTypeNames = ${JSON.stringify(jobTypeNames)};`,
        ].join('\n');
      }
      if (!id.endsWith('.graphql') || id === options.sharedFragmentsPath) return null;
      this.addWatchFile(options.schemaPath);
      this.addWatchFile(options.sharedFragmentsPath);
      const source = withSharedFragments(readFileSync(id, 'utf8'), readFileSync(options.sharedFragmentsPath, 'utf8'));
      const operations: [string, string][] = [];
      for (const [suffix, text] of variantsOf(source, load())) {
        checkDocument(load(), text, id);
        operations.push(...operationsOf(text).map(([name, operation]): [string, string] => [`${name}${suffix}`, operation]));
      }
      return `export default ${JSON.stringify(Object.fromEntries(operations))};`;
    },
  };
}

/** Fails with every validation error of a document, named by its file. */
function checkDocument(schema: GraphQLSchema, text: string, source: string): void {
  const document = parse(text);
  const problems = validate(schema, document).map((error) => error.message);
  for (const definition of document.definitions) {
    if (definition.kind === Kind.OPERATION_DEFINITION && !definition.name) problems.push('every operation needs a name');
  }
  if (problems.length) throw new Error(`${source} does not match schema.graphql:\n${problems.map((problem) => `  ${problem}`).join('\n')}`);
}

/** The document with the shared fragments it spreads (and the ones those spread) appended. */
function withSharedFragments(text: string, shared: string): string {
  const available = new Map<string, FragmentDefinitionNode>();
  for (const definition of parse(shared).definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) available.set(definition.name.value, definition);
  }
  const document = parse(text);
  const own = new Set(
    document.definitions.flatMap((definition) => (definition.kind === Kind.FRAGMENT_DEFINITION ? [definition.name.value] : [])),
  );
  const added = new Map<string, FragmentDefinitionNode>();
  const pending = spreadsOf(document);
  while (pending.length) {
    const name = pending.pop()!;
    const fragment = available.get(name);
    if (own.has(name) || added.has(name) || !fragment) continue;
    added.set(name, fragment);
    pending.push(...spreadsOf(fragment));
  }
  return added.size ? `${text}\n${[...added.values()].map((fragment) => print(fragment)).join('\n')}` : text;
}

function spreadsOf(node: ASTNode): string[] {
  const names: string[] = [];
  visit(node, { FragmentSpread: (spread) => void names.push(spread.name.value) });
  return names;
}

/**
 * Each operation of a document as its own text, with just the fragments it uses (transitively),
 * so the page sends one operation per request.
 */
function operationsOf(text: string): [string, string][] {
  const document = parse(text);
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions)
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  return document.definitions.flatMap((definition): [string, string][] => {
    if (definition.kind !== Kind.OPERATION_DEFINITION || !definition.name) return [];
    const used = new Set<string>();
    const pending = spreadsOf(definition);
    while (pending.length) {
      const name = pending.pop()!;
      if (used.has(name)) continue;
      used.add(name);
      pending.push(...spreadsOf(fragments.get(name)!));
    }
    const definitions = [definition, ...[...used].map((name) => fragments.get(name)!)];
    return [[definition.name.value, print({ kind: Kind.DOCUMENT, definitions })]];
  });
}

/**
 * A document as sent: as written, or, when it spreads `...TypedJob`, once per concrete job type
 * (suffix `@ImportMboxJob`) with that type's typed `input` and `output`, and once without them
 * (no suffix) for a job whose type the page does not know. One type per document: the types'
 * shapes differ, and aliasing them all apart would pass the API's alias limit.
 */
function variantsOf(text: string, schema: GraphQLSchema): [string, string][] {
  if (!/\.\.\.TypedJob\b/.test(text)) return [['', text]];
  const generic: [string, string] = ['', `${text}\nfragment TypedJob on Job { __typename }`];
  return [
    generic,
    ...jobTypesOf(schema).map((type): [string, string] => {
      const fields = type.getFields();
      const typed = [
        fields.input ? `input ${selectionOf(fields.input)}` : '',
        fields.output ? `output ${selectionOf(fields.output)}` : '',
      ].filter(Boolean);
      const inline = typed.length ? ` ... on ${type.name} { ${typed.join(' ')} }` : '';
      return [`@${type.name}`, `${text}\nfragment TypedJob on Job { __typename${inline} }`];
    }),
  ];
}

/** Concrete job types (objects implementing `Job`), by name. */
function jobTypesOf(schema: GraphQLSchema): GraphQLObjectType[] {
  const job = schema.getType('Job');
  if (!job || !isInterfaceType(job)) throw new Error('schema.graphql has no Job interface');
  return schema.getPossibleTypes(job).filter(isObjectType) as GraphQLObjectType[];
}

/** A selection of every field callable without arguments, a few levels deep; `{}`-free for leaves. */
function selectionOf(field: GraphQLField<unknown, unknown>, depth = 0): string {
  const type = getNamedType(field.type);
  if (isLeafType(type)) return '';
  if (!isObjectType(type) || depth > 3) return '{ __typename }';
  const children = Object.values(type.getFields())
    .filter((child) => child.args.every((arg) => !isNonNullType(arg.type)))
    .filter((child) => !isInterfaceType(getNamedType(child.type)) && !isUnionType(getNamedType(child.type)))
    .map((child) => `${child.name} ${selectionOf(child, depth + 1)}`.trim());
  return `{ ${children.length ? children.join(' ') : '__typename'} }`;
}

/** One argument (or input field) of a job mutation, as a form renders it. */
export interface ArgumentSpec {
  name: string;
  description: string | null;
  /** The named type: a scalar, an enum or an input object. */
  type: string;
  kind: 'SCALAR' | 'ENUM' | 'INPUT_OBJECT';
  required: boolean;
  list: boolean;
  /** An enum's values. */
  values?: string[];
  /** An input object's fields. */
  fields?: ArgumentSpec[];
  defaultValue?: unknown;
}

/** One job mutation: the form that starts the job. */
export interface JobForm {
  mutation: string;
  graphqlType: string;
  description: string | null;
  args: ArgumentSpec[];
  /** Sends a file (GraphQL multipart request). */
  upload: boolean;
  /** The mutation, validated against the schema. */
  document: string;
}

function argumentSpecOf(arg: GraphQLArgument | GraphQLInputField, depth = 0): ArgumentSpec {
  let type: GraphQLInputType = arg.type;
  const required = isNonNullType(type);
  if (type instanceof GraphQLNonNull) type = type.ofType;
  const list = type instanceof GraphQLList;
  if (type instanceof GraphQLList) type = type.ofType;
  if (type instanceof GraphQLNonNull) type = type.ofType;
  const named = getNamedType(type);
  const spec: ArgumentSpec = {
    name: arg.name,
    description: arg.description ?? null,
    type: named.name,
    kind: named instanceof GraphQLEnumType ? 'ENUM' : named instanceof GraphQLInputObjectType ? 'INPUT_OBJECT' : 'SCALAR',
    required,
    list,
  };
  if (arg.defaultValue !== undefined) spec.defaultValue = arg.defaultValue;
  if (named instanceof GraphQLEnumType) spec.values = named.getValues().map((value) => value.name);
  if (named instanceof GraphQLInputObjectType && depth < 4) {
    spec.fields = Object.values(named.getFields()).map((field) => argumentSpecOf(field, depth + 1));
  }
  return spec;
}

function usesUpload(spec: ArgumentSpec): boolean {
  return spec.type === 'File' || (spec.fields ?? []).some(usesUpload);
}

/** Every mutation that returns a concrete job type, with the document that calls it. */
function jobFormsOf(schema: GraphQLSchema): JobForm[] {
  const jobTypes = new Set(jobTypesOf(schema).map((type) => type.name));
  const mutations = Object.values(schema.getMutationType()?.getFields() ?? {});
  const forms = mutations
    .filter((field) => jobTypes.has(getNamedType(field.type).name))
    .map((field): JobForm => {
      const variables = field.args.map((arg) => `$${arg.name}: ${arg.type.toString()}`).join(', ');
      const args = field.args.map((arg) => `${arg.name}: $${arg.name}`).join(', ');
      const call = args ? `${field.name}(${args})` : field.name;
      const head = variables ? `mutation Start_${field.name}(${variables})` : `mutation Start_${field.name}`;
      const document = `${head} {\n  ${call} { id type status }\n}`;
      checkDocument(schema, document, `the ${field.name} form`);
      const specs = field.args.map((arg) => argumentSpecOf(arg));
      return {
        mutation: field.name,
        graphqlType: getNamedType(field.type).name,
        description: field.description ?? null,
        args: specs,
        upload: specs.some(usesUpload),
        document,
      };
    });
  return forms.sort((a, b) => a.mutation.localeCompare(b.mutation));
}
