/**
 * A grouped bar chart as plain SVG text: no plotting dependency, and the file diffs readably
 * between runs. Switches to a log scale when the bars differ by more than `logAbove` times,
 * so a small bar next to a tall one is still visible.
 */

export interface Series {
  name: string;
  color: string;
  /** One value per group; null draws no bar. */
  values: Array<number | null>;
}

export interface ReferenceLine {
  value: number;
  label: string;
  /** Only across this group; across the whole chart when absent. */
  group?: number;
}

export interface BarChart {
  title: string;
  groupLabel: string;
  groups: string[];
  series: Series[];
  references?: ReferenceLine[];
  format(value: number): string;
  logAbove?: number;
}

/** Every figure draws the bridge in blue and the baseline it is measured against in grey. */
export const BRIDGE_COLOR = '#3b6ea5';
export const BASELINE_COLOR = '#999999';

/** The millisecond summary a latency chart reads. */
export interface LatencyBars {
  p50: number;
  p95: number;
  max: number;
}

/** p50, p95 and max of the bridge beside the same of its baseline. */
export function latencyChart(
  title: string,
  bridge: LatencyBars,
  baseline: { name: string; bars: LatencyBars },
  references: ReferenceLine[] = [],
): BarChart {
  const bars = (b: LatencyBars) => [b.p50, b.p95, b.max];
  return {
    title,
    groupLabel: '',
    groups: ['p50', 'p95', 'max'],
    series: [
      { name: 'bridge', color: BRIDGE_COLOR, values: bars(bridge) },
      { name: baseline.name, color: BASELINE_COLOR, values: bars(baseline.bars) },
    ],
    references,
    format: (v) => v.toFixed(0),
  };
}

const FONT = 'font-family="Helvetica, Arial, sans-serif"';

export const escapeXml = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function text(x: number, y: number, content: string, attrs = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${FONT} ${attrs}>${escapeXml(content)}</text>`;
}

/** The chart drawn inside the box (x, y, width, height), as SVG elements. */
export function barChartPanel(
  chart: BarChart,
  x: number,
  y: number,
  width: number,
  height: number,
): string {
  const margin = { top: 34, right: 10, bottom: 40, left: 58 };
  const plotX = x + margin.left;
  const plotY = y + margin.top;
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;

  const values = [
    ...chart.series.flatMap((s) => s.values),
    ...(chart.references ?? []).map((r) => r.value),
  ].filter((v): v is number => v !== null && Number.isFinite(v) && v > 0);
  const max = Math.max(...values);
  const min = Math.min(...values);
  const log = max / min > (chart.logAbove ?? 30);
  const axis = log ? logAxis(min, max) : linearAxis(max);
  const toY = (v: number) => plotY + plotH - axis.fraction(v) * plotH;

  const out: string[] = [];
  out.push(
    text(
      x + width / 2,
      y + 16,
      chart.title + (log ? ' (log scale)' : ''),
      'font-size="14" font-weight="bold" text-anchor="middle"',
    ),
  );
  for (const tick of axis.ticks) {
    const ty = toY(tick);
    out.push(
      `<line x1="${plotX}" y1="${ty.toFixed(1)}" x2="${plotX + plotW}" y2="${ty.toFixed(1)}" stroke="#e5e5e5"/>`,
    );
    out.push(
      text(plotX - 6, ty + 4, chart.format(tick), 'font-size="11" text-anchor="end" fill="#444"'),
    );
  }
  out.push(
    `<line x1="${plotX}" y1="${plotY + plotH}" x2="${plotX + plotW}" y2="${plotY + plotH}" stroke="#333"/>`,
  );

  const groupW = plotW / chart.groups.length;
  const barW = Math.min(44, (groupW * 0.8) / chart.series.length);
  // Drawn last, with a white halo, so reference lines never cross a bar's value.
  const valueLabels: string[] = [];
  chart.groups.forEach((group, g) => {
    const groupX = plotX + g * groupW;
    const barsX = groupX + (groupW - barW * chart.series.length) / 2;
    chart.series.forEach((series, s) => {
      const v = series.values[g];
      if (v === null || v === undefined || !Number.isFinite(v) || v <= 0) return;
      const bx = barsX + s * barW;
      const by = toY(v);
      out.push(
        `<rect x="${(bx + 1).toFixed(1)}" y="${by.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(plotY + plotH - by).toFixed(1)}" fill="${series.color}"><title>${escapeXml(`${series.name}, ${group}: ${chart.format(v)}`)}</title></rect>`,
      );
      valueLabels.push(
        text(
          bx + barW / 2,
          by - 4,
          chart.format(v),
          'font-size="10" text-anchor="middle" fill="#222" stroke="#fff" stroke-width="3" paint-order="stroke"',
        ),
      );
    });
    out.push(
      text(groupX + groupW / 2, plotY + plotH + 16, group, 'font-size="12" text-anchor="middle"'),
    );
  });
  out.push(
    text(
      plotX + plotW / 2,
      plotY + plotH + 34,
      chart.groupLabel,
      'font-size="12" text-anchor="middle" fill="#444"',
    ),
  );

  for (const ref of chart.references ?? []) {
    const ry = toY(ref.value);
    const x1 = ref.group === undefined ? plotX : plotX + ref.group * groupW + 4;
    const x2 = ref.group === undefined ? plotX + plotW : plotX + (ref.group + 1) * groupW - 4;
    // Named in the legend, not beside the line: a label there collides with the bars' values.
    out.push(
      `<line x1="${x1.toFixed(1)}" y1="${ry.toFixed(1)}" x2="${x2.toFixed(1)}" y2="${ry.toFixed(1)}" stroke="${REFERENCE_COLOR}" stroke-width="1.5" stroke-dasharray="6 4"><title>${escapeXml(ref.label)}</title></line>`,
    );
  }
  out.push(...valueLabels);
  return out.join('\n');
}

export const REFERENCE_COLOR = '#c00';

export interface LegendItem {
  name: string;
  color: string;
  /** Drawn as a dashed line (a reference line) instead of a square. */
  dashed?: boolean;
}

/** A legend row of coloured squares (or dashed lines) and names, starting at (x, y). */
export function legend(items: LegendItem[], x: number, y: number): string {
  let cx = x;
  return items
    .map((item) => {
      const mark = item.dashed
        ? `<line x1="${cx}" y1="${y - 4}" x2="${cx + 24}" y2="${y - 4}" stroke="${item.color}" stroke-width="1.5" stroke-dasharray="6 4"/>`
        : `<rect x="${cx}" y="${y - 10}" width="12" height="12" fill="${item.color}"/>`;
      const textX = cx + (item.dashed ? 29 : 17);
      cx = textX + 13 + item.name.length * 7;
      return mark + text(textX, y, item.name, 'font-size="12"');
    })
    .join('\n');
}

interface Axis {
  ticks: number[];
  /** Where a value sits between the bottom (0) and top (1) of the plot. */
  fraction(v: number): number;
}

function linearAxis(max: number): Axis {
  const rough = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= rough)!;
  const top = Math.ceil((max * 1.12) / step) * step; // room for the value labels above bars
  const ticks: number[] = [];
  for (let t = 0; t <= top + step / 2; t += step) ticks.push(t);
  return { ticks, fraction: (v) => v / top };
}

function logAxis(min: number, max: number): Axis {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max) + 0.15);
  const ticks: number[] = [];
  for (let p = lo; p <= hi; p++) ticks.push(10 ** p);
  return { ticks, fraction: (v) => (Math.log10(v) - lo) / (hi - lo) };
}

/**
 * A whole SVG document of one bar chart with its legend above it (each series, then each
 * reference line): what most suites write beside their results page.
 */
export function barChartSvg(chart: BarChart, width: number, height: number): string {
  const items: LegendItem[] = [
    ...chart.series.map((s) => ({ name: s.name, color: s.color })),
    ...(chart.references ?? []).map((r) => ({
      name: r.label,
      color: REFERENCE_COLOR,
      dashed: true,
    })),
  ];
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height + 40}" viewBox="0 0 ${width} ${height + 40}"><rect width="${width}" height="${height + 40}" fill="#fff"/>\n${legend(
    items,
    60,
    16,
  )}\n${barChartPanel(chart, 0, 20, width, height)}\n</svg>\n`;
}
