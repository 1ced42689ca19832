// Hand-written SVG line charts for the Markdown report: throughput over time and latency CDFs.
export interface ChartSeries {
  name: string;
  points: Array<[number, number]>;
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: ChartSeries[];
  logX?: boolean;
}

const WIDTH = 720;
const HEIGHT = 360;
const MARGIN = { left: 70, right: 170, top: 36, bottom: 48 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

const esc = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Round tick steps (1, 2, 5 x 10^n) covering [0, max]. */
function linearTicks(max: number): number[] {
  if (max <= 0) return [0, 1];
  const raw = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let t = 0; ticks.length === 0 || ticks[ticks.length - 1]! < max; t += step) ticks.push(t);
  return ticks;
}

function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let p = Math.floor(Math.log10(min)); 10 ** p <= max * 10; p++) ticks.push(10 ** p);
  return ticks;
}

const formatTick = (v: number) => (v >= 1000 ? `${+(v / 1000).toPrecision(3)}k` : `${+v.toPrecision(3)}`);

export function renderLineChart(chart: LineChart): string {
  const all = chart.series.flatMap((s) => s.points).filter(([x]) => !chart.logX || x > 0);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const xs = all.map(([x]) => x);
  const yTicks = linearTicks(Math.max(0, ...all.map(([, y]) => y)));
  const yMax = yTicks[yTicks.length - 1]!;
  const xTicks = chart.logX
    ? logTicks(Math.min(...xs, 1), Math.max(...xs, 10))
    : linearTicks(Math.max(1, ...xs));
  const [xMin, xMax] = [xTicks[0]!, xTicks[xTicks.length - 1]!];
  const sx = (x: number) => MARGIN.left + plotW * (chart.logX
    ? (Math.log10(x) - Math.log10(xMin)) / (Math.log10(xMax) - Math.log10(xMin))
    : (x - xMin) / (xMax - xMin));
  const sy = (y: number) => MARGIN.top + plotH * (1 - y / yMax);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2 - MARGIN.right / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(chart.title)}</text>`,
  ];
  for (const t of yTicks) {
    parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${sy(t)}" y2="${sy(t)}" stroke="#ddd"/>`,
      `<text x="${MARGIN.left - 6}" y="${sy(t) + 4}" text-anchor="end">${formatTick(t)}</text>`);
  }
  for (const t of xTicks) {
    parts.push(`<line x1="${sx(t)}" x2="${sx(t)}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" stroke="#eee"/>`,
      `<text x="${sx(t)}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">${formatTick(t)}</text>`);
  }
  parts.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
    `<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 10}" text-anchor="middle">${esc(chart.xLabel)}</text>`,
    `<text transform="translate(16 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(chart.yLabel)}</text>`,
  );
  chart.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const points = s.points.filter(([x]) => !chart.logX || x > 0).map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`);
    if (points.length === 1) parts.push(`<circle cx="${points[0]!.split(',')[0]}" cy="${points[0]!.split(',')[1]}" r="3" fill="${color}"/>`);
    else parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.join(' ')}"/>`);
    const ly = MARGIN.top + 10 + i * 18;
    parts.push(`<rect x="${WIDTH - MARGIN.right + 12}" y="${ly - 9}" width="12" height="12" fill="${color}"/>`,
      `<text x="${WIDTH - MARGIN.right + 30}" y="${ly + 1}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
