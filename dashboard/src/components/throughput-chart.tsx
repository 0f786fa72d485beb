import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { JobListModel } from '../model/job-list';
import { useNow } from './use-now';

const HEIGHT = 160;

/**
 * Completed and failed jobs per minute over the last hour (uPlot on a canvas), kept live from the
 * stream. Screen readers get the totals in the label.
 */
export function ThroughputChart({ list }: { list: JobListModel }) {
  const holder = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);
  // The window moves on with the clock, not only when a job ends.
  const now = useNow(15_000);
  const series = list.throughputSeries(now);
  const completed = series.completed.reduce((sum, n) => sum + n, 0);
  const failed = series.failed.reduce((sum, n) => sum + n, 0);

  useEffect(() => {
    const element = holder.current!;
    const bars = uPlot.paths.bars!({ size: [0.8, 12] });
    chart.current = new uPlot(
      {
        width: Math.max(240, element.clientWidth),
        height: HEIGHT,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
        axes: [{}, { size: 40, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] }],
        series: [
          {},
          { label: 'completed', stroke: '#1a7f37', fill: 'rgba(26,127,55,0.35)', paths: bars },
          { label: 'failed', stroke: '#cf222e', fill: 'rgba(207,34,46,0.45)', paths: bars },
        ],
      },
      [series.minutes, series.completed, series.failed],
      element,
    );
    const resize = new ResizeObserver(() => chart.current?.setSize({ width: Math.max(240, element.clientWidth), height: HEIGHT }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      chart.current?.destroy();
      chart.current = null;
    };
  }, []);

  useEffect(() => {
    chart.current?.setData([series.minutes, series.completed, series.failed]);
  });

  return (
    <figure class="throughput" data-completed={completed} data-failed={failed}>
      <div ref={holder} role="img" aria-label={`Last hour: ${completed} jobs completed, ${failed} failed`} />
      <figcaption>
        <span class="key completed" aria-hidden="true" /> {completed.toLocaleString()} completed,{' '}
        <span class="key failed" aria-hidden="true" /> {failed.toLocaleString()} failed in the last hour (per minute)
      </figcaption>
    </figure>
  );
}
