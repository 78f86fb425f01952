/** Number and time formatting for the UI. */

/** Milliseconds with 3 significant digits: 0.0412 ms, 4.71 ms, 123 ms. */
export function ms(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  if (v >= 100) return `${v.toFixed(0)} ms`;
  return `${v.toPrecision(3)} ms`;
}

/** 17.6k, 4.92M, 1.2G. */
export function count(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${(v / 1e3).toPrecision(3)}k`;
  return String(Math.round(v * 100) / 100);
}

export function pct(v: number | null | undefined, digits = 1): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  return `${(v * 100).toFixed(digits)}%`;
}

export function bytes(v: number | null | undefined): string {
  if (v === null || v === undefined) return 'built on request';
  if (v >= 1 << 20) return `${(v / (1 << 20)).toFixed(1)} MiB`;
  if (v >= 1 << 10) return `${(v / (1 << 10)).toFixed(1)} KiB`;
  return `${v} B`;
}

/** "12 s ago", "3 min ago", else the local date and time. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '–';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return iso;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 5) return 'just now';
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return new Date(t).toLocaleString();
}

export function shape(s: readonly (number | null)[]): string {
  return s.map((d) => (d === null ? '?' : String(d))).join('×');
}

export function seconds(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  return v >= 90 ? `${(v / 60).toFixed(1)} min` : `${v.toFixed(1)} s`;
}
