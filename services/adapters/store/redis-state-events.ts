import { randomBytes } from "node:crypto";
import os from "node:os";
import type { ChainableCommander } from "ioredis";
import { Redis } from "ioredis";
import { errorMessage } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { EventDelivery, StateEvent, StateEvents } from "../../ports/state-events.js";
import { closeConnection, commandConnection } from "../redis/connection.js";
import { releaseLease, takeLease } from "../redis/lease.js";

/** The Redis stream the store appends build and release status changes to (one field, `event`: JSON). */
export const STATE_EVENTS_STREAM = "slipway:state-events";
/**
 * About how many events the stream keeps (`MAXLEN ~`): some four per build, so the last ~25,000 builds,
 * some 4 MB. An event trimmed before a group read it is lost to that group; at this length that takes
 * days of builds with no consumer running.
 */
export const STATE_EVENTS_MAXLEN = 100_000;

/** Appends one event to a MULTI, after the write it describes: both happen or neither. */
export function appendStateEvent(multi: ChainableCommander, event: StateEvent): ChainableCommander {
  return multi.xadd(
    STATE_EVENTS_STREAM,
    "MAXLEN",
    "~",
    STATE_EVENTS_MAXLEN,
    "*",
    "event",
    JSON.stringify(event),
  );
}

export interface StateEventConsumerOptions {
  /** The consumer group: one per feature that follows the events (`gitlab-statuses`, …). */
  readonly group: string;
  readonly logger: Logger;
  /**
   * Where a group that does not exist yet starts: `"all"` (every event the stream still holds) for a
   * feature that must not miss what happened before its first consumer ran, `"new"` for one that only
   * cares from now on.
   */
  readonly from: "all" | "new";
  /**
   * An event handed to a consumer and not acknowledged for this long is taken over by another (its
   * process died, or its handler failed). Longer than a handler takes: the GitLab reporter retries for
   * at most 30 s. Default 60 s.
   */
  readonly claimIdleMs?: number;
  /** Deliveries after which an event that keeps failing is logged and dropped. Default 10. */
  readonly maxAttempts?: number;
  /** How long one read waits for new events before it looks for stale ones again. Default 2 s. */
  readonly blockMs?: number;
}

/** Events read per XREADGROUP; at most this many more are in flight while earlier ones finish. */
const BATCH = 100;
const MAX_IN_FLIGHT = 1_000;
/** A consumer with nothing pending that has not read for this long belonged to a process that is gone. */
const DEAD_CONSUMER_MS = 24 * 3600 * 1000;
/** How long the reader's lease lasts unrenewed: a process killed while reading is replaced after this. */
const LEASE_MS = 15_000;

/**
 * Consumes the state-event stream as one member of a consumer group (XREADGROUP). An event is
 * acknowledged (XACK) once its handler resolves; one that stays unacknowledged for `claimIdleMs` (its
 * process died, or the handler failed) is claimed (XCLAIM) by the group's reader and handled again, up to
 * `maxAttempts` deliveries. So a change recorded while no consumer runs is handled when one starts, and
 * each event is handled by one consumer of the group.
 *
 * One consumer of a group reads at a time (a lease in Redis, renewed with every read; the others wait
 * to take over). Spreading a group's events over several processes would hand one build's `running`
 * and `failed` to two processes that post them in either order; one reader keeps the stream's order,
 * and its handlers still run concurrently. If the reader dies, another takes over within 15 s.
 */
export class RedisStateEvents implements StateEvents {
  private closed = false;
  private leading = false;
  private loop: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private lastClaim = 0;
  private readonly consumer = `${os.hostname()}-${process.pid}-${randomBytes(4).toString("hex")}`;
  private readonly claimIdleMs: number;
  private readonly maxAttempts: number;
  private readonly blockMs: number;
  private readonly logger: Logger;

  private constructor(
    /** Blocking reads only: a blocked connection cannot send the acknowledgements meanwhile. */
    private readonly reader: Redis,
    private readonly redis: Redis,
    private readonly options: StateEventConsumerOptions,
  ) {
    this.claimIdleMs = options.claimIdleMs ?? 60_000;
    this.maxAttempts = options.maxAttempts ?? 10;
    this.blockMs = options.blockMs ?? 2_000;
    this.logger = options.logger.child({ group: options.group, consumer: this.consumer });
  }

  static create(url: string, options: StateEventConsumerOptions): RedisStateEvents {
    return new RedisStateEvents(
      // Bounded like every request connection (commandConnection): a read blocks 2 s, under the 3 s timeout.
      commandConnection(url),
      commandConnection(url),
      options,
    );
  }

  /** Creates the group if needed (a Redis that is down fails the start) and consumes until `close`. */
  async consume(handle: (event: StateEvent, delivery: EventDelivery) => Promise<void>): Promise<void> {
    if (this.loop) throw new Error("already consuming");
    await this.ensureGroup();
    this.loop = this.run(handle);
  }

  /**
   * Stops reading; handlers still running may finish within a second. What they did not acknowledge is
   * taken over by another consumer after `claimIdleMs`.
   */
  async close(): Promise<void> {
    this.closed = true;
    // Ends the blocked read at once; the loop sees `closed` and stops.
    this.reader.disconnect();
    await this.loop;
    // A standby consumer takes over at once rather than when the lease runs out.
    await releaseLease(this.redis, this.leaseKey(), this.consumer).catch(() => undefined);
    await Promise.race([Promise.allSettled([...this.inFlight]), sleep(1_000)]);
    await closeConnection(this.redis);
  }

  private async run(handle: (event: StateEvent, delivery: EventDelivery) => Promise<void>) {
    let failing = false;
    while (!this.closed) {
      try {
        if (!(await this.lead())) {
          await sleep(this.blockMs);
          continue;
        }
        if (Date.now() - this.lastClaim >= this.claimIdleMs / 2) {
          this.lastClaim = Date.now();
          await this.claimStale(handle);
        }
        while (this.inFlight.size >= MAX_IN_FLIGHT) await Promise.race(this.inFlight);
        const entries = await this.read();
        for (const [id, fields] of entries) this.dispatch(handle, id, fields, 1);
        if (failing) this.logger.info({}, "state events are read again");
        failing = false;
      } catch (error) {
        if (this.closed) break;
        if (errorMessage(error).startsWith("NOGROUP")) {
          // The stream or the group was deleted (a flushed Redis): start again from what it holds.
          await this.ensureGroup().catch(() => undefined);
          continue;
        }
        if (!failing) this.logger.warn({ err: error }, "state events not read; retrying");
        failing = true;
        await sleep(1_000);
      }
    }
  }

  /** Takes or renews the group's reader lease; false while another consumer holds it. */
  private async lead(): Promise<boolean> {
    const held = await takeLease(this.redis, this.leaseKey(), this.consumer, LEASE_MS);
    if (held !== this.leading) {
      this.leading = held;
      this.logger.info({}, held ? "reading state events" : "another consumer reads state events");
      // A new reader first looks for what the previous one left unacknowledged.
      if (held) this.lastClaim = 0;
    }
    return held;
  }

  private leaseKey(): string {
    return `${STATE_EVENTS_STREAM}:${this.options.group}:reader`;
  }

  private async read(): Promise<[string, string[]][]> {
    const reply = (await this.reader.xreadgroup(
      "GROUP",
      this.options.group,
      this.consumer,
      "COUNT",
      BATCH,
      "BLOCK",
      this.blockMs,
      "STREAMS",
      STATE_EVENTS_STREAM,
      ">",
    )) as [string, [string, string[]][]][] | null;
    return reply?.[0]?.[1] ?? [];
  }

  /**
   * Takes over events left unacknowledged for `claimIdleMs` by any consumer of the group (XPENDING, then
   * XCLAIM, which only succeeds for an entry still that idle: two consumers never both take one). Gives
   * up on an event after `maxAttempts` deliveries, and forgets consumers long gone.
   */
  private async claimStale(handle: (event: StateEvent, delivery: EventDelivery) => Promise<void>) {
    const { group } = this.options;
    // IDLE (Redis 6.2): only entries no consumer acknowledged for that long, however many are younger.
    const stale = (await this.redis.xpending(
      STATE_EVENTS_STREAM,
      group,
      "IDLE",
      this.claimIdleMs,
      "-",
      "+",
      BATCH,
    )) as [string, string, number, number][];
    const giveUp = stale.filter(([, , , deliveries]) => deliveries >= this.maxAttempts);
    for (const [id, consumer, , deliveries] of giveUp) {
      this.logger.error(
        { event_id: id, from: consumer, deliveries },
        "state event dropped after repeated failures",
      );
    }
    if (giveUp.length > 0) await this.redis.xack(STATE_EVENTS_STREAM, group, ...giveUp.map(([id]) => id));
    const retry = stale.filter(([, , , deliveries]) => deliveries < this.maxAttempts);
    if (retry.length > 0) {
      const claimed = (await this.redis.xclaim(
        STATE_EVENTS_STREAM,
        group,
        this.consumer,
        this.claimIdleMs,
        ...retry.map(([id]) => id),
      )) as ([string, string[]] | null)[];
      const attempts = new Map(retry.map(([id, , , deliveries]) => [id, deliveries + 1]));
      for (const entry of claimed) {
        // Trimmed from the stream meanwhile: XCLAIM drops it from the pending list.
        if (entry === null) continue;
        const [id, fields] = entry;
        this.logger.info({ event_id: id, attempt: attempts.get(id) }, "state event taken over");
        this.dispatch(handle, id, fields, attempts.get(id) ?? 2);
      }
    }
    await this.forgetDeadConsumers();
  }

  private async forgetDeadConsumers(): Promise<void> {
    const consumers = (await this.redis.xinfo("CONSUMERS", STATE_EVENTS_STREAM, this.options.group)) as (
      string | number
    )[][];
    for (const fields of consumers) {
      const info = Object.fromEntries(
        fields.flatMap((v, i, all) => (i % 2 === 0 ? [[String(v), all[i + 1]]] : [])),
      ) as { name?: string; pending?: number; idle?: number };
      if (info.name === undefined || info.name === this.consumer) continue;
      if (info.pending === 0 && (info.idle ?? 0) > DEAD_CONSUMER_MS)
        await this.redis.xgroup("DELCONSUMER", STATE_EVENTS_STREAM, this.options.group, info.name);
    }
  }

  private dispatch(
    handle: (event: StateEvent, delivery: EventDelivery) => Promise<void>,
    id: string,
    fields: string[],
    attempt: number,
  ): void {
    const event = parseEvent(fields);
    const done = (
      event === undefined
        ? Promise.resolve(this.logger.warn({ event_id: id }, "unreadable state event skipped"))
        : handle(event, { id, attempt })
    ).then(
      () => this.redis.xack(STATE_EVENTS_STREAM, this.options.group, id).then(() => undefined),
      (error: unknown) =>
        // Left pending: claimed again after claimIdleMs.
        this.logger.warn({ event_id: id, attempt, err: error }, "state event not handled; will retry"),
    );
    const tracked = done.catch((error: unknown) =>
      this.logger.warn({ event_id: id, err: error }, "state event not acknowledged"),
    );
    this.inFlight.add(tracked);
    void tracked.finally(() => this.inFlight.delete(tracked));
  }

  private async ensureGroup(): Promise<void> {
    try {
      await this.redis.xgroup(
        "CREATE",
        STATE_EVENTS_STREAM,
        this.options.group,
        this.options.from === "all" ? "0" : "$",
        "MKSTREAM",
      );
      this.logger.info({ from: this.options.from }, "state event group created");
    } catch (error) {
      if (!errorMessage(error).startsWith("BUSYGROUP")) throw error;
    }
  }
}

function parseEvent(fields: string[]): StateEvent | undefined {
  const i = fields.indexOf("event");
  if (i < 0 || i % 2 !== 0) return undefined;
  try {
    return JSON.parse(fields[i + 1]!) as StateEvent;
  } catch {
    return undefined;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
