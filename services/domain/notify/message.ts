/** What one notification says, on every channel: already bounded and free of secrets. */
export interface Notification {
  readonly tool: string;
  readonly kind: "build_failed" | "deploy_failed" | "rollback" | "job";
  readonly subject: string;
  readonly reason: string;
  readonly log_tail: readonly string[];
  readonly url: string;
  readonly build_id?: string | undefined;
  readonly release_id?: string | undefined;
  readonly job?: string | undefined;
  readonly run_id?: string | undefined;
  readonly status?: string | undefined;
  /** Job mails: how many runs it tells of. */
  readonly count?: { readonly failed: number; readonly succeeded: number } | undefined;
}

/** The mail's subject and plain-text body. */
export function composeMail(n: Notification): { subject: string; text: string } {
  const lines = [
    `Tool: ${n.tool}`,
    `What: ${n.subject}`,
    `Reason: ${n.reason}`,
    ...(n.count ? [`Runs: ${n.count.failed} failed, ${n.count.succeeded} succeeded`] : []),
    `Details: ${n.url}`,
    "",
    ...(n.log_tail.length > 0 ? ["Last log lines:", ...n.log_tail.map((l) => `  ${l}`)] : ["No log lines."]),
    "",
    "-- ",
    "Slipway notifications. Maintainers are managed with `slipway tools notify <tool> add|remove|list`.",
  ];
  return { subject: `[slipway] ${n.tool}: ${n.subject}`, text: lines.join("\n") };
}
