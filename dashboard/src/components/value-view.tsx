/** A typed input or output (or metadata), as a definition list: nested objects nest, lists number. */
export function ValueView({ value }: { value: unknown }) {
  if (value === null || value === undefined) return <span class="muted">—</span>;
  if (Array.isArray(value)) {
    if (value.length === 0) return <span class="muted">none</span>;
    return (
      <ol class="value-list">
        {value.map((item, index) => (
          <li key={index}>
            <ValueView value={item} />
          </li>
        ))}
      </ol>
    );
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([key]) => key !== '__typename');
    return (
      <dl class="value">
        {entries.map(([key, item]) => (
          <div key={key} class="value-entry">
            <dt>{key}</dt>
            <dd>
              <ValueView value={item} />
            </dd>
          </div>
        ))}
      </dl>
    );
  }
  return <span>{String(value)}</span>;
}
