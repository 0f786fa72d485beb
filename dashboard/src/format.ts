/** How long ago an instant was, briefly: "12 s", "5 min", "3 h", "2 d". */
export function age(iso: string, now: number): string {
  return span(Math.max(0, now - Date.parse(iso)));
}

/** A length of time, briefly: "850 ms", "12 s", "5 min 3 s", "3 h 10 min". */
export function span(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  const seconds = Math.floor(ms / 1_000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return seconds % 60 ? `${minutes} min ${seconds % 60} s` : `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
  return `${Math.floor(hours / 24)} d`;
}

/** How long a job ran: to its end, or so far while it runs; null before it started. */
export function duration(startedAt: string | null, finishedAt: string | null, now: number): string | null {
  if (!startedAt) return null;
  // A running job's clock is the page's, a tick behind the server's at worst: never below zero.
  return span(Math.max(0, (finishedAt ? Date.parse(finishedAt) : now) - Date.parse(startedAt)));
}

/** An instant in the reader's locale, to the second. */
export function dateTime(iso: string | null): string {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' }) : '—';
}

/** A catalogue name for people: `import_mbox` → "import mbox". */
export function typeLabel(type: string): string {
  return type.replace(/_/g, ' ');
}
