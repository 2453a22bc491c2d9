import type { JobBatch, JobRunDecision, NotifyStore, OutgoingWebhook } from "../../services/ports/notify.js";

interface JobState {
  last_mail_ms: number;
  failed: number;
  succeeded: number;
  last_status: string;
  last_reason: string | null;
  last_run_id: string;
  /** When the batch is due (the Redis store's score in its due set). */
  due_at: number;
}

/** In-memory NotifyStore with the same decisions as RedisNotifyStore's scripts (not durable, not shared). */
export class MemoryNotifyStore implements NotifyStore {
  readonly marks = new Set<string>();
  private readonly lists = new Map<string, Set<string>>();
  private readonly hooks = new Map<string, OutgoingWebhook>();
  private readonly decisions = new Map<string, JobRunDecision>();
  private readonly jobs = new Map<string, JobState>();
  private readonly claims = new Set<string>();

  recipients(tool: string): Promise<string[]> {
    return Promise.resolve([...(this.lists.get(tool) ?? [])].sort());
  }
  addRecipient(tool: string, address: string): Promise<boolean> {
    const set = this.lists.get(tool) ?? new Set<string>();
    this.lists.set(tool, set);
    const added = !set.has(address);
    set.add(address);
    return Promise.resolve(added);
  }
  removeRecipient(tool: string, address: string): Promise<boolean> {
    return Promise.resolve(this.lists.get(tool)?.delete(address) ?? false);
  }
  webhook(tool: string): Promise<OutgoingWebhook | undefined> {
    return Promise.resolve(this.hooks.get(tool));
  }
  setWebhook(tool: string, hook: OutgoingWebhook): Promise<void> {
    this.hooks.set(tool, hook);
    return Promise.resolve();
  }
  deleteWebhook(tool: string): Promise<boolean> {
    return Promise.resolve(this.hooks.delete(tool));
  }
  delivered(key: string): Promise<boolean> {
    return Promise.resolve(this.marks.has(key));
  }
  markDelivered(key: string): Promise<void> {
    this.marks.add(key);
    return Promise.resolve();
  }
  recordJobRun(
    event: { id: string; run_id: string; tool: string; job: string; status: string; reason: string | null },
    nowMs: number,
    windowMs: number,
  ): Promise<JobRunDecision> {
    const seen = this.decisions.get(event.id);
    if (seen) return Promise.resolve(seen);
    const key = `${event.tool}:${event.job}`;
    const s = this.jobs.get(key) ?? {
      last_mail_ms: -1,
      failed: 0,
      succeeded: 0,
      last_status: "",
      last_reason: null,
      last_run_id: "",
      due_at: Infinity,
    };
    this.jobs.set(key, s);
    let d: JobRunDecision;
    if (s.failed + s.succeeded === 0 && (s.last_mail_ms < 0 || nowMs - s.last_mail_ms >= windowMs)) {
      s.last_mail_ms = nowMs;
      d = "send";
    } else {
      if (event.status === "succeeded") s.succeeded++;
      else s.failed++;
      Object.assign(s, { last_status: event.status, last_reason: event.reason, last_run_id: event.run_id });
      s.due_at = s.last_mail_ms + windowMs;
      d = "batched";
    }
    this.decisions.set(event.id, d);
    return Promise.resolve(d);
  }
  dueBatches(nowMs: number, limit: number): Promise<JobBatch[]> {
    const due: JobBatch[] = [];
    for (const [key, s] of this.jobs) {
      if (s.failed + s.succeeded === 0 || nowMs < s.due_at) continue;
      const [tool = "", job = ""] = key.split(":");
      const { failed, succeeded, last_status, last_reason, last_run_id } = s;
      due.push({
        tool,
        job,
        failed,
        succeeded,
        last_status,
        last_reason,
        last_run_id,
        since_ms: s.last_mail_ms,
      });
    }
    return Promise.resolve(due.slice(0, limit));
  }
  settleBatch(batch: JobBatch, nowMs: number, windowMs: number): Promise<void> {
    const s = this.jobs.get(`${batch.tool}:${batch.job}`);
    if (s) {
      s.failed -= batch.failed;
      s.succeeded -= batch.succeeded;
      s.last_mail_ms = nowMs;
      s.due_at = nowMs + windowMs;
    }
    this.claims.delete(`${batch.tool}:${batch.job}`);
    return Promise.resolve();
  }
  claimBatch(tool: string, job: string): Promise<boolean> {
    const key = `${tool}:${job}`;
    if (this.claims.has(key)) return Promise.resolve(false);
    this.claims.add(key);
    return Promise.resolve(true);
  }
}
