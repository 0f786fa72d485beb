/** The sum of a Prometheus metric's samples (every label set) at a process's /metrics, read with the metrics token. */
export async function metricTotal(baseUrl: string, metricsToken: string, name: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })).text();
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'gm'))].reduce((sum, m) => sum + Number(m[1]), 0);
}
