/** A uPlot time-series chart as a Preact component, sized to its container (and resized with it). */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { html } from './html.js';

const COLORS = ['#2e86de', '#2e8b57', '#c0392b', '#8e44ad'];

export function Chart({ title, times, series, unit = '' }) {
  const box = useRef(null);
  const plot = useRef(null);
  const width = () => Math.max(240, box.current?.clientWidth ?? 600);
  useEffect(() => {
    const options = {
      title,
      width: width(),
      height: 200,
      scales: { x: { time: true } },
      axes: [{}, { values: (_u, ticks) => ticks.map((tick) => `${tick}${unit}`) }],
      series: [
        {},
        ...series.map((entry, index) => ({
          label: entry.label,
          stroke: COLORS[index % COLORS.length],
          width: 2,
        })),
      ],
    };
    plot.current = new uPlot(options, [times, ...series.map((entry) => entry.values)], box.current);
    const observer = new ResizeObserver(() => plot.current?.setSize({ width: width(), height: 200 }));
    observer.observe(box.current);
    return () => {
      observer.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [title, series.length]);
  useEffect(() => {
    plot.current?.setData([times, ...series.map((entry) => entry.values)]);
  }, [times, series]);
  return html`<figure class="chart" ref=${box} aria-label=${title}></figure>`;
}
