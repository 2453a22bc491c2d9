export interface ProbeResult {
  readonly ok: boolean;
  /** What the probe saw: "HTTP 200", "connection refused", … */
  readonly detail: string;
}

/** Checks whether a started process answers: TCP connect, or an HTTP GET of a health path. */
export interface HealthProbe {
  probe(address: { host: string; port: number }, httpPath?: string): Promise<ProbeResult>;
}
