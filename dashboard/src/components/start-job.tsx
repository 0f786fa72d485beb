import { jobForms } from 'virtual:job-catalogue';
import type { ArgumentSpec, JobForm } from '../../build/graphql-documents';
import { useState } from 'preact/hooks';
import { type GraphQLRequestError, request } from '../api/graphql';
import type { Session } from '../api/session';
import type { Account } from '../model/types';

type Values = Record<string, unknown>;

/**
 * The forms offered: every job mutation but the bulk actions (`cancelJobs`, `retryJobs`), which
 * the list starts for the jobs you select; a form would let one click cancel everything.
 */
const startableForms = jobForms.filter((form) => form.graphqlType !== 'BulkJobActionJob');

/**
 * Starts any catalogue job from a form generated from its mutation's arguments in schema.graphql
 * (at build time): text, numbers, switches, choices for enums, a file picker for uploads (sent as
 * a GraphQL multipart request), and the caller's accounts for `accountId`. Optional groups such as
 * `options` fold away. Once started, the job opens beside the list.
 */
export function StartJob({
  session,
  accounts,
  onStarted,
}: {
  session: Session;
  accounts: KnownAccounts;
  onStarted(jobId: string, typename: string): void;
}) {
  const [mutation, setMutation] = useState(
    (startableForms.find((form) => form.mutation === 'importMbox') ?? startableForms[0])?.mutation ?? '',
  );
  const form = startableForms.find((candidate) => candidate.mutation === mutation);
  return (
    <div class="start-job">
      <label for="start-job-type">Job</label>{' '}
      <select id="start-job-type" name="job" value={mutation} onChange={(event) => setMutation((event.target as HTMLSelectElement).value)}>
        {startableForms.map((candidate) => (
          <option key={candidate.mutation} value={candidate.mutation}>
            {candidate.mutation}
          </option>
        ))}
      </select>
      {form && <JobFormView key={form.mutation} form={form} session={session} accounts={accounts} onStarted={onStarted} />}
    </div>
  );
}

function JobFormView({
  form,
  session,
  accounts,
  onStarted,
}: {
  form: JobForm;
  session: Session;
  accounts: KnownAccounts;
  onStarted(jobId: string, typename: string): void;
}) {
  const [values, setValues] = useState<Values>({});
  const [files, setFiles] = useState<Map<string, File>>(new Map());
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setProblem(null);
    let variables: Values;
    try {
      variables = variablesOf(form.args, values, files, 'variables');
    } catch (error) {
      setProblem((error as Error).message);
      return;
    }
    setBusy(true);
    try {
      const data = await request<Record<string, { id: string }>>(session.token, form.document, variables, files);
      const job = data[form.mutation]!;
      setValues({});
      setFiles(new Map());
      (event.target as HTMLFormElement).reset();
      onStarted(job.id, form.graphqlType);
    } catch (error) {
      const refused = error as GraphQLRequestError;
      setProblem(`${refused.message} (${refused.code})`);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="job-form" onSubmit={submit} aria-label={`Start ${form.mutation}`}>
      {form.description && <p class="description">{form.description}</p>}
      {form.args.map((spec) => (
        <ArgumentField
          key={spec.name}
          spec={spec}
          path={`variables.${spec.name}`}
          value={values[spec.name]}
          onChange={(value) => setValues({ ...values, [spec.name]: value })}
          onFile={(path, file) => {
            const next = new Map(files);
            if (file) next.set(path, file);
            else next.delete(path);
            setFiles(next);
          }}
          accounts={accounts}
        />
      ))}
      {problem && (
        <p role="alert" class="error">
          {problem}
        </p>
      )}
      <button type="submit" disabled={busy}>
        {busy ? 'Starting…' : `Start ${form.mutation}`}
      </button>
    </form>
  );
}

interface FieldProps {
  spec: ArgumentSpec;
  /** Where the value goes in the request (`variables.options.tags`): a file is mapped by it. */
  path: string;
  value: unknown;
  onChange(value: unknown): void;
  onFile(path: string, file: File | null): void;
  accounts: KnownAccounts;
}

/** The caller's accounts, once read; until then (or if reading them failed) `list` is null. */
export interface KnownAccounts {
  list: Account[] | null;
  /** Why they could not be read. */
  error: string | null;
}

/** An account field's help: what to do when there are no accounts, or they could not be read. */
function withAccountsNote(description: string | null, accounts: KnownAccounts): string | null {
  const note =
    accounts.list === null
      ? accounts.error && `Your accounts could not be loaded (${accounts.error}); enter an account id, or reload the page.`
      : accounts.list.length === 0 && 'You have no accounts yet: create one in GraphiQL with createAccount(input: { name }).';
  return note ? `${description ?? ''} ${note}`.trim() : description;
}

const fieldId = (path: string) => `field-${path.replace(/\W/g, '-')}`;

function ArgumentField({ spec, path, value, onChange, onFile, accounts }: FieldProps) {
  const id = fieldId(path);
  const label = (
    <label for={id}>
      {spec.name}
      {spec.required ? ' (required)' : ''}
    </label>
  );
  const help = spec.name === 'accountId' ? withAccountsNote(spec.description, accounts) : spec.description;
  const hint = help ? <small id={`${id}-hint`}>{help}</small> : null;
  const described = help ? `${id}-hint` : undefined;

  if (spec.kind === 'INPUT_OBJECT') {
    const nested = (value as Values | undefined) ?? {};
    const fields = (spec.fields ?? []).map((field) => (
      <ArgumentField
        key={field.name}
        spec={field}
        path={`${path}.${field.name}`}
        value={nested[field.name]}
        onChange={(next) => onChange({ ...nested, [field.name]: next })}
        onFile={onFile}
        accounts={accounts}
      />
    ));
    const group = (
      <fieldset>
        <legend>{spec.name}</legend>
        {hint}
        {fields}
      </fieldset>
    );
    return spec.required ? (
      group
    ) : (
      <details class="optional-group">
        <summary>{spec.name} (optional)</summary>
        {group}
      </details>
    );
  }

  let control: preact.JSX.Element;
  if (spec.type === 'File') {
    control = (
      <input
        id={id}
        type="file"
        required={spec.required}
        aria-describedby={described}
        onChange={(event) => onFile(path, (event.target as HTMLInputElement).files?.[0] ?? null)}
      />
    );
  } else if (spec.name === 'accountId' && spec.type === 'ID' && !spec.list && accounts.list?.length) {
    const options = accounts.list.map((account): [string, string] => [
      account.id,
      account.email ? `${account.name} <${account.email}>` : account.name,
    ]);
    control = choice(id, spec, described, value, onChange, spec.required ? 'Choose an account' : 'None', options);
  } else if (spec.kind === 'ENUM' && spec.list) {
    const chosen = new Set((value as string[] | undefined) ?? []);
    return (
      <fieldset>
        <legend>{spec.name}</legend>
        {hint}
        {spec.values!.map((option) => (
          <label key={option} class="inline">
            <input
              type="checkbox"
              checked={chosen.has(option)}
              onChange={(event) => {
                const next = new Set(chosen);
                if ((event.target as HTMLInputElement).checked) next.add(option);
                else next.delete(option);
                onChange(next.size ? [...next] : undefined);
              }}
            />
            {option}
          </label>
        ))}
      </fieldset>
    );
  } else if (spec.kind === 'ENUM') {
    const options = spec.values!.map((option): [string, string] => [option, option]);
    control = choice(id, spec, described, value, onChange, spec.required ? `Choose ${spec.name}` : 'Default', options);
  } else if (spec.type === 'Boolean' && !spec.list) {
    control = (
      <select
        id={id}
        aria-describedby={described}
        value={value === undefined ? '' : String(value)}
        onChange={(event) => {
          const text = (event.target as HTMLSelectElement).value;
          onChange(text === '' ? undefined : text === 'true');
        }}
      >
        <option value="">{spec.required ? 'Choose' : 'Default'}</option>
        <option value="true">yes</option>
        <option value="false">no</option>
      </select>
    );
  } else if (spec.type === 'JSON') {
    control = (
      <textarea
        id={id}
        rows={3}
        required={spec.required}
        aria-describedby={described}
        placeholder='{"key": "value"}'
        onInput={(event) => onChange((event.target as HTMLTextAreaElement).value || undefined)}
      />
    );
  } else {
    const numeric = spec.type === 'Int' || spec.type === 'Float';
    control = (
      <input
        id={id}
        type={spec.type === 'DateTime' ? 'datetime-local' : numeric && !spec.list ? 'number' : 'text'}
        step={spec.type === 'Int' ? 1 : spec.type === 'Float' ? 'any' : undefined}
        required={spec.required}
        aria-describedby={described}
        placeholder={spec.list ? 'comma-separated' : undefined}
        value={String(value ?? '')}
        onInput={(event) => onChange((event.target as HTMLInputElement).value || undefined)}
      />
    );
  }
  return (
    <div class="field">
      {label}
      {control}
      {hint}
    </div>
  );
}

/** A choice of `[value, label]` options, with a blank first one (`blank`: what choosing none means). */
function choice(
  id: string,
  spec: ArgumentSpec,
  described: string | undefined,
  value: unknown,
  onChange: (value: unknown) => void,
  blank: string,
  options: [string, string][],
): preact.JSX.Element {
  return (
    <select
      id={id}
      required={spec.required}
      aria-describedby={described}
      value={String(value ?? '')}
      onChange={(event) => onChange((event.target as HTMLSelectElement).value || undefined)}
    >
      <option value="">{blank}</option>
      {options.map(([optionValue, label]) => (
        <option key={optionValue} value={optionValue}>
          {label}
        </option>
      ))}
    </select>
  );
}

/** The form's values as the mutation's variables: typed, empty optional ones left out, files as null. */
function variablesOf(specs: ArgumentSpec[], values: Values, files: Map<string, File>, path: string): Values {
  const variables: Values = {};
  for (const spec of specs) {
    const at = `${path}.${spec.name}`;
    const raw = values[spec.name];
    if (spec.type === 'File') {
      if (files.has(at)) variables[spec.name] = null;
      else if (spec.required) throw new Error(`${spec.name}: choose a file`);
      continue;
    }
    if (raw === undefined || raw === '') {
      if (spec.required && spec.kind !== 'INPUT_OBJECT') throw new Error(`${spec.name} is required`);
      if (spec.kind !== 'INPUT_OBJECT' || !spec.required) continue;
    }
    if (spec.kind === 'INPUT_OBJECT') {
      const nested = variablesOf(spec.fields ?? [], (raw as Values | undefined) ?? {}, files, at);
      if (Object.keys(nested).length || spec.required) variables[spec.name] = nested;
      continue;
    }
    variables[spec.name] = typedValue(spec, raw);
  }
  return variables;
}

function typedValue(spec: ArgumentSpec, raw: unknown): unknown {
  if (spec.kind === 'ENUM' || typeof raw !== 'string') return raw;
  const one = (text: string): unknown => {
    if (spec.type === 'Int') {
      const number = Number(text);
      if (!Number.isInteger(number)) throw new Error(`${spec.name}: ${text} is not a whole number`);
      return number;
    }
    if (spec.type === 'Float') {
      const number = Number(text);
      if (!Number.isFinite(number)) throw new Error(`${spec.name}: ${text} is not a number`);
      return number;
    }
    if (spec.type === 'DateTime') {
      const at = new Date(text);
      if (Number.isNaN(at.getTime())) throw new Error(`${spec.name}: not a date and time`);
      return at.toISOString();
    }
    if (spec.type === 'JSON') {
      try {
        return JSON.parse(text);
      } catch {
        throw new Error(`${spec.name}: not valid JSON`);
      }
    }
    return text;
  };
  return spec.list
    ? raw
        .split(',')
        .map((part) => part.trim())
        .filter(Boolean)
        .map(one)
    : one(raw);
}
