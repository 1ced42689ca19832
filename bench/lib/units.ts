// Parsing and printing of the sizes, durations and rates the bench talks in.
const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kb: 1000, kib: 1024,
  m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3,
  t: 1024 ** 4, tb: 1000 ** 4, tib: 1024 ** 4,
};

/** `4096`, `4KiB`, `4k`, `1.5MiB`, `2GB` -> bytes. */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = match ? SIZE_UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) throw new Error(`not a size: '${text}'`);
  return Math.round(Number(match[1]) * unit);
}

/** `10s`, `500ms`, `2m`, `1h`, or plain seconds -> milliseconds. */
export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!match) throw new Error(`not a duration: '${text}'`);
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? 's']!;
  return Math.round(Number(match[1]) * factor);
}

/** Object sizes: one fixed size, or `MIN-MAX` drawn log-uniformly (as many small as large). */
export interface SizeSpec {
  min: number;
  max: number;
}

export function parseSizeSpec(text: string): SizeSpec {
  const [low, high] = text.split('-');
  const min = parseSize(low!);
  const max = high === undefined ? min : parseSize(high);
  if (max < min) throw new Error(`size range '${text}' runs backwards`);
  return { min, max };
}

export function drawSize(spec: SizeSpec, random: () => number = Math.random): number {
  if (spec.min === spec.max) return spec.min;
  const low = Math.log(Math.max(1, spec.min));
  return Math.round(Math.exp(low + random() * (Math.log(spec.max) - low)));
}

export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatSizeSpec(spec: SizeSpec): string {
  return spec.min === spec.max ? formatSize(spec.min) : `${formatSize(spec.min)}-${formatSize(spec.max)}`;
}

/** Decimal megabytes per second, as S3 benchmarks (warp, cosbench) report throughput. */
export function megabytesPerSecond(bytes: number, ms: number): number {
  return ms > 0 ? bytes / 1e6 / (ms / 1000) : 0;
}

/** Microseconds as a short human duration. */
export function formatMicros(us: number): string {
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

export function formatNumber(value: number, digits = 1): string {
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(digits);
}
