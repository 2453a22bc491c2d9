/** One notification mail: plain text, already free of secrets. */
export interface MailMessage {
  readonly to: readonly string[];
  readonly subject: string;
  readonly text: string;
}

/** Sends mail (SMTP). Rejects when the server did not accept the message, so that it is tried again. */
export interface Mailer {
  send(message: MailMessage): Promise<void>;
  close(): Promise<void>;
}

/** POSTs a JSON body to a tool's outgoing webhook, signed with its secret. Rejects on a non-2xx answer. */
export interface WebhookSender {
  post(url: string, secret: string, body: string): Promise<void>;
}

/** A tool's outgoing webhook as the notifier needs it (the secret in plain text). */
export interface OutgoingWebhook {
  readonly url: string;
  readonly secret: string;
}

/** What the notifier decided for one finished job run (kept per event id, so a redelivery gets the same). */
export type JobRunDecision =
  /** Mail now: the first run to end since the job's last mail an hour or more ago. */
  | "send"
  /** Counted into the job's batch, mailed when its hour is up. */
  | "batched";

/** The runs of one job counted since its last mail, waiting for the hour to be up. */
export interface JobBatch {
  readonly tool: string;
  readonly job: string;
  readonly failed: number;
  readonly succeeded: number;
  /** The last counted run's status and reason. */
  readonly last_status: string;
  readonly last_reason: string | null;
  readonly last_run_id: string;
  /** When the job's previous mail went (ms since epoch): the batch is due an hour after. */
  readonly since_ms: number;
}

/**
 * Per-tool notification settings and the notifier's durable bookkeeping: which events were delivered
 * on which channel, and the per-job batches of repeated runs. Everything here survives a restart.
 */
export interface NotifyStore {
  recipients(tool: string): Promise<string[]>;
  /** False when the address was already there. */
  addRecipient(tool: string, address: string): Promise<boolean>;
  /** False when the address was not there. */
  removeRecipient(tool: string, address: string): Promise<boolean>;

  webhook(tool: string): Promise<OutgoingWebhook | undefined>;
  setWebhook(tool: string, hook: OutgoingWebhook): Promise<void>;
  /** False when the tool had none. */
  deleteWebhook(tool: string): Promise<boolean>;

  /** Whether `key` (`<event id>:<channel>`) was delivered. */
  delivered(key: string): Promise<boolean>;
  markDelivered(key: string): Promise<void>;

  /**
   * Counts one finished run of a job, once per event id (a redelivery returns the first decision and
   * counts nothing): `send` when the job's last mail is at least `windowMs` old, else `batched`.
   */
  recordJobRun(
    event: {
      /** The state event's id: what makes a redelivery recognisable. */
      readonly id: string;
      readonly run_id: string;
      readonly tool: string;
      readonly job: string;
      readonly status: string;
      readonly reason: string | null;
    },
    nowMs: number,
    windowMs: number,
  ): Promise<JobRunDecision>;
  /** Batches whose hour is up at `nowMs`, oldest first. */
  dueBatches(nowMs: number, limit: number): Promise<JobBatch[]>;
  /**
   * After a batch was mailed: takes its counted runs out (runs counted meanwhile stay for the next one)
   * and starts the job's next window at `nowMs`.
   */
  settleBatch(batch: JobBatch, nowMs: number, windowMs: number): Promise<void>;
  /** Claims a due batch for one process for `ttlMs`, so two processes do not both mail it. */
  claimBatch(tool: string, job: string, ttlMs: number): Promise<boolean>;
}
