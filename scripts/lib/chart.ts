import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';

/** A line chart: one line per value of `series`, with optional horizontal reference rules. */
export interface LineChartSpec {
  title: string;
  x: { field: string; title: string; scale?: 'log' | 'linear' };
  y: { field: string; title: string };
  /** Field whose values name the lines. */
  series: string;
  rows: object[];
  /** Horizontal lines, e.g. the teacher's score, labelled at the right end. */
  rules?: { y: number; label: string }[];
}

/**
 * Renders `spec` to SVG with vega-lite (no browser: vega's headless renderer) and writes it
 * to `path`, creating the directory. Returns the SVG text.
 */
export async function writeLineChart(path: string, spec: LineChartSpec): Promise<string> {
  const values = spec.rows.map((row) => ({ ...row }));
  const ys = values.map((row) => (row as Record<string, number>)[spec.y.field]);
  const all = [...ys, ...(spec.rules ?? []).map((r) => r.y)].filter(Number.isFinite);
  const pad = Math.max(0.005, (Math.max(...all) - Math.min(...all)) * 0.08);
  const domain = [Math.min(...all) - pad, Math.max(...all) + pad];
  const layers: object[] = [
    {
      data: { values },
      mark: { type: 'line', point: true },
      encoding: {
        x: {
          field: spec.x.field,
          type: 'quantitative',
          title: spec.x.title,
          scale: { type: spec.x.scale ?? 'linear' },
        },
        y: {
          field: spec.y.field,
          type: 'quantitative',
          title: spec.y.title,
          scale: { domain, zero: false },
        },
        color: { field: spec.series, type: 'nominal', title: null },
      },
    },
  ];
  for (const rule of spec.rules ?? []) {
    layers.push(
      {
        data: { values: [{ y: rule.y }] },
        mark: { type: 'rule', strokeDash: [6, 4], color: 'black' },
        encoding: { y: { field: 'y', type: 'quantitative' } },
      },
      {
        data: { values: [{ y: rule.y, label: rule.label }] },
        mark: { type: 'text', align: 'right', dy: -6, x: 'width', color: 'black' },
        encoding: { y: { field: 'y', type: 'quantitative' }, text: { field: 'label' } },
      },
    );
  }
  const liteSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: spec.title,
    width: 560,
    height: 320,
    layer: layers,
  };
  const compiled = vegaLite.compile(liteSpec as vegaLite.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, svg);
  return svg;
}
