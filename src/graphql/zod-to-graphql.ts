// biome-ignore-all lint/suspicious/noExplicitAny: Pothos refs are built here from runtime zod shapes, which have no static types
import type { z } from 'zod';
import { globalRegistry } from 'zod';
import { builder } from './builder.js';

/**
 * Builds Pothos types from the zod schemas of job declarations, so a job type's mutation
 * arguments and its typed `input` and `output` follow from its one declaration. Object and enum
 * schemas are named by their `.meta({ id })`; `describe()` texts become schema descriptions.
 *
 * Three views of a schema exist: `input` (mutation arguments), `params` (the `input` field of a
 * job; object names get a `Params` suffix so they never clash with input types) and `output`.
 */
export type ZodView = 'input' | 'params' | 'output';

type AnyRef = any;
type Schema = z.core.$ZodType;

interface FieldType {
  type: AnyRef;
  required: boolean | { list: boolean; items: boolean };
  description: string | undefined;
}

const refs = new Map<string, AnyRef>();

function meta(schema: Schema): Record<string, unknown> {
  return (globalRegistry.get(schema as never) as Record<string, unknown> | undefined) ?? {};
}

function def(schema: Schema): any {
  return (schema as any)._zod.def;
}

/** Unwraps optional/nullable/default; reports whether the value may be absent. */
function unwrap(schema: Schema): { inner: Schema; optional: boolean; description: string | undefined } {
  let current = schema;
  let optional = false;
  let description = meta(schema).description as string | undefined;
  for (;;) {
    const kind = def(current).type;
    if (kind === 'optional' || kind === 'nullable' || kind === 'default') {
      optional = true;
      current = def(current).innerType;
      description ??= meta(current).description as string | undefined;
    } else if (kind === 'pipe') {
      current = def(current).in;
    } else {
      return { inner: current, optional, description };
    }
  }
}

function typeName(id: string, view: ZodView): string {
  if (view !== 'params') return id;
  return `${id.endsWith('Input') ? id.slice(0, -'Input'.length) : id}Params`;
}

function scalarOrRef(schema: Schema, view: ZodView, fallbackName: string): AnyRef {
  const marker = meta(schema).graphqlType as string | undefined;
  if (marker) return marker;
  const d = def(schema);
  switch (d.type) {
    case 'string':
      return d.format === 'uuid' || d.format === 'guid' ? 'ID' : 'String';
    case 'number':
      return (schema as any).isInt ? 'Int' : 'Float';
    case 'boolean':
      return 'Boolean';
    case 'enum':
      return enumRef(schema, fallbackName);
    case 'object':
      return objectRef(schema, view, fallbackName);
    case 'unknown':
    case 'any':
    case 'record':
      return 'JSON';
    default:
      throw new Error(`zod type ${d.type} has no GraphQL mapping (${fallbackName})`);
  }
}

/** The GraphQL type of one field or argument. */
export function fieldType(schema: Schema, view: ZodView, fallbackName: string): FieldType {
  const { inner, optional, description } = unwrap(schema);
  if (def(inner).type === 'array') {
    const item = unwrap(def(inner).element);
    return {
      type: [scalarOrRef(item.inner, view, fallbackName)],
      required: { list: !optional, items: !item.optional },
      description,
    };
  }
  return { type: scalarOrRef(inner, view, fallbackName), required: !optional, description };
}

function enumRef(schema: Schema, fallbackName: string): AnyRef {
  const name = (meta(schema).id as string | undefined) ?? fallbackName;
  const existing = refs.get(`enum:${name}`);
  if (existing) return existing;
  const values = Object.values(def(schema).entries as Record<string, string>);
  const ref = builder.enumType(name, { values, description: meta(schema).description as string | undefined });
  refs.set(`enum:${name}`, ref);
  return ref;
}

function objectRef(schema: Schema, view: ZodView, fallbackName: string): AnyRef {
  const id = (meta(schema).id as string | undefined) ?? fallbackName;
  const name = typeName(id, view);
  const key = `${view === 'input' ? 'input' : 'object'}:${name}`;
  const existing = refs.get(key);
  if (existing) return existing;
  const description = meta(schema).description as string | undefined;
  const entries = publicEntries(schema);
  if (entries.length === 0) {
    // GraphQL forbids empty object types; an input-less job still shows that it has none.
    entries.push(['_empty', { _zod: { def: { type: 'boolean' } } } as unknown as Schema]);
  }

  let ref: AnyRef;
  if (view === 'input') {
    ref = builder.inputType(name, {
      description,
      fields: (t: any) =>
        Object.fromEntries(
          entries.map(([field, fieldSchema]) => {
            const f = fieldType(fieldSchema, view, `${name}${pascal(field)}`);
            return [field, t.field({ type: f.type, required: f.required, description: f.description })];
          }),
        ),
    });
  } else {
    ref = builder.objectRef<Record<string, unknown>>(name).implement({
      description,
      fields: (t: any) =>
        Object.fromEntries(
          entries.map(([field, fieldSchema]) => {
            const f = fieldType(fieldSchema, view, `${name}${pascal(field)}`);
            return [
              field,
              t.field({
                type: f.type,
                nullable:
                  f.required === false
                    ? true
                    : typeof f.required === 'object'
                      ? { list: !f.required.list, items: !f.required.items }
                      : false,
                description: f.description,
                resolve: (parent: Record<string, unknown>) => parent[field] ?? null,
              }),
            ];
          }),
        ),
    });
  }
  refs.set(key, ref);
  return ref;
}

/** The fields of an object schema that clients may see: `.meta({ internal: true })` hides one (e.g. a storage path). */
function publicEntries(schema: Schema): [string, Schema][] {
  return Object.entries(def(schema).shape as Record<string, Schema>).filter(([, field]) => meta(field).internal !== true);
}

/** Top-level fields of an object schema marked `.meta({ internal: true })`: kept in storage, never shown. */
export function internalKeys(schema: Schema): string[] {
  const { inner } = unwrap(schema);
  if (def(inner).type !== 'object') return [];
  return Object.entries(def(inner).shape as Record<string, Schema>)
    .filter(([, field]) => meta(field).internal === true)
    .map(([key]) => key);
}

/** Whether a job's stored input has anything to show; a type without one gets no `input` field. */
export function hasPublicFields(schema: Schema): boolean {
  const { inner } = unwrap(schema);
  return def(inner).type !== 'object' || publicEntries(inner).length > 0;
}

function pascal(text: string): string {
  return text.replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase());
}

/** GraphQL turns absent optional fields into null; zod's optional wants them absent. */
export function stripNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripNulls);
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== null)
        .map(([k, v]) => [k, stripNulls(v)]),
    );
  }
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === null) {
    return stripNulls({ ...(value as object) });
  }
  return value;
}
