import type { Redis } from "ioredis";
import type { Labels, MetricDef, MetricOp } from "./catalogue.js";

const COUNTERS = "slipway:metrics:counters";
const HISTOGRAMS = "slipway:metrics:histograms";
/** An event counted once is remembered this long: longer than any redelivery of it takes. */
const SEEN_S = 24 * 3600;

/**
 * Applies increments in one step, and only once per event id when one is given (state events are
 * delivered at least once). KEYS: counters, histograms, the event's seen-key (ignored without an id).
 * ARGV: event id or "", then triples of hash (c|h), field, increment.
 */
const RECORD = `
if ARGV[1] ~= '' then
  if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ${SEEN_S}) then return 0 end
end
for i = 2, #ARGV, 3 do
  redis.call('HINCRBYFLOAT', ARGV[i] == 'c' and KEYS[1] or KEYS[2], ARGV[i + 1], ARGV[i + 2])
end
return 1
`;

/** A stored series: the metric's name, its labels and its value. */
export interface CounterSeries {
  readonly name: string;
  readonly labels: Labels;
  readonly value: number;
}

export interface HistogramSeries {
  readonly name: string;
  readonly labels: Labels;
  /** Cumulative counts by upper bound (`+Inf` included), as Prometheus exposes them. */
  readonly buckets: ReadonlyMap<string, number>;
  readonly sum: number;
  readonly count: number;
}

export interface MetricsSnapshot {
  readonly counters: readonly CounterSeries[];
  readonly histograms: readonly HistogramSeries[];
}

/**
 * Counters and histograms kept in Redis (two hashes), so that every process of every role adds to the
 * same series and any API process exposes the installation's totals; they survive restarts (Prometheus
 * copes with resets anyway). A histogram is stored as its cumulative bucket counts, sum and count.
 */
export class RedisMetrics {
  constructor(private readonly redis: Redis) {}

  /** Applies `ops` at once; with `onceId`, only the first time that id is recorded (a day's memory). */
  async record(ops: readonly MetricOp[], onceId?: string): Promise<boolean> {
    if (ops.length === 0) return false;
    const args: string[] = [onceId ?? ""];
    for (const op of ops) args.push(...fieldsOf(op));
    const done = await this.redis.eval(
      RECORD,
      3,
      COUNTERS,
      HISTOGRAMS,
      `slipway:metrics:seen:${onceId ?? ""}`,
      ...args,
    );
    return done === 1;
  }

  async snapshot(): Promise<MetricsSnapshot> {
    const [counters, histograms] = await Promise.all([
      this.redis.hgetall(COUNTERS),
      this.redis.hgetall(HISTOGRAMS),
    ]);
    return parseSnapshot(counters, histograms);
  }
}

/** The hash fields an op increments: `c`/`h`, field, increment. */
export function fieldsOf(op: MetricOp): string[] {
  const series = seriesKey(op.metric, op.labels);
  if (op.kind === "count") return ["c", series, String(op.by ?? 1)];
  const out: string[] = [];
  for (const le of op.metric.buckets ?? []) if (op.value <= le) out.push("h", `${series}|${le}`, "1");
  out.push("h", `${series}|+Inf`, "1", "h", `${series}|sum`, String(op.value), "h", `${series}|count`, "1");
  return out;
}

/** `name{"label":"value",…}` with the metric's labels in its declared order (others dropped). */
function seriesKey(metric: MetricDef, labels: Labels): string {
  const ordered: Record<string, string> = {};
  for (const l of metric.labels) ordered[l] = labels[l] ?? "";
  return `${metric.name}${JSON.stringify(ordered)}`;
}

function splitSeries(key: string): { name: string; labels: Labels } | undefined {
  const i = key.indexOf("{");
  if (i <= 0) return undefined;
  try {
    return { name: key.slice(0, i), labels: JSON.parse(key.slice(i)) as Labels };
  } catch {
    return undefined;
  }
}

export function parseSnapshot(
  counters: Record<string, string>,
  histograms: Record<string, string>,
): MetricsSnapshot {
  const outCounters: CounterSeries[] = [];
  for (const [key, value] of Object.entries(counters)) {
    const series = splitSeries(key);
    if (series) outCounters.push({ ...series, value: Number(value) });
  }
  const byKey = new Map<
    string,
    { name: string; labels: Labels; buckets: Map<string, number>; sum: number; count: number }
  >();
  for (const [field, value] of Object.entries(histograms)) {
    const bar = field.lastIndexOf("|");
    const key = field.slice(0, bar);
    const part = field.slice(bar + 1);
    let h = byKey.get(key);
    if (!h) {
      const series = splitSeries(key);
      if (!series) continue;
      h = { ...series, buckets: new Map(), sum: 0, count: 0 };
      byKey.set(key, h);
    }
    if (part === "sum") h.sum = Number(value);
    else if (part === "count") h.count = Number(value);
    else h.buckets.set(part, Number(value));
  }
  return { counters: outCounters, histograms: [...byKey.values()] };
}
