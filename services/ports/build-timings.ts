/**
 * Where a build run's phase timings go when it ends (`PhaseClock.timings()`: milliseconds per phase and
 * `total`); the metrics feature makes them Prometheus histograms. Fire and forget: an implementation
 * reports its own failures and never fails the build.
 */
export interface BuildTimingsSink {
  phasesTook(timings: Readonly<Record<string, number>>): void;
}
