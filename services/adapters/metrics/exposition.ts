import { Counter, Gauge, Histogram, Registry, type HistogramConfiguration } from "prom-client";
import { METRICS, type Labels, type MetricDef } from "./catalogue.js";
import type { HistogramSeries, MetricsSnapshot } from "./redis-metrics.js";

/** A gauge's value at scrape time. */
export interface GaugeSample {
  readonly metric: MetricDef;
  readonly labels: Labels;
  readonly value: number;
}

/**
 * The Prometheus text for one scrape, with prom-client: the stored counters and histograms (every
 * catalogue counter and histogram appears, with no series until something happened) and the gauges
 * measured just now. A registry per scrape: nothing is kept in this process between scrapes.
 */
export async function exposition(
  snapshot: MetricsSnapshot,
  gauges: readonly GaugeSample[],
): Promise<{ contentType: string; text: string }> {
  const registry = new Registry();
  for (const def of Object.values(METRICS) as MetricDef[]) {
    const config = { name: def.name, help: def.help, labelNames: [...def.labels], registers: [] };
    switch (def.kind) {
      case "counter": {
        const counter = new Counter(config);
        for (const s of snapshot.counters) if (s.name === def.name) counter.inc(s.labels, s.value);
        registry.registerMetric(counter);
        break;
      }
      case "histogram": {
        const series = snapshot.histograms.filter((s) => s.name === def.name);
        registry.registerMetric(
          new StoredHistogram({ ...config, buckets: [...(def.buckets ?? [])] }, series),
        );
        break;
      }
      case "gauge": {
        const gauge = new Gauge(config);
        for (const g of gauges) if (g.metric.name === def.name) gauge.inc(g.labels, g.value);
        registry.registerMetric(gauge);
        break;
      }
    }
  }
  return { contentType: registry.contentType, text: await registry.metrics() };
}

/** A histogram whose bucket counts come from the store rather than from `observe` in this process. */
class StoredHistogram extends Histogram<string> {
  constructor(
    private readonly config: HistogramConfiguration<string>,
    private readonly series: readonly HistogramSeries[],
  ) {
    super(config);
  }

  /**
   * What prom-client's registry renders a histogram from (and `get()` builds on); not in its typings.
   * Only the stored series: a histogram without labels is not shown as zeros before its first observation.
   */
  async getForPromString() {
    const bounds = [...(this.config.buckets ?? []).map(String), "+Inf"];
    const series = (metricName: string, labels: Labels, value: number) => ({
      metricName: `${this.config.name}${metricName}`,
      labels,
      sharedLabels: {},
      value,
    });
    const values = this.series.flatMap((s) => [
      ...bounds.map((le) => series("_bucket", { ...s.labels, le }, s.buckets.get(le) ?? 0)),
      series("_sum", { ...s.labels }, s.sum),
      series("_count", { ...s.labels }, s.count),
    ]);
    return Promise.resolve({
      name: this.config.name,
      help: this.config.help,
      type: "histogram",
      aggregator: "sum",
      values,
    });
  }
}
