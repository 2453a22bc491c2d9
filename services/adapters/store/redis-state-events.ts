import type { Redis } from "ioredis";
import { closeConnection, commandConnection } from "../redis/connection.js";
import type { StateEvent, StateEvents } from "../../ports/state-events.js";

/** Redis pub/sub channel the store publishes build and release status changes on. */
export const STATE_EVENTS_CHANNEL = "slipway:state-events";

/** Called by RedisStore after a status write; a lost event costs a commit status, never the write. */
export async function publishStateEvent(redis: Redis, event: StateEvent): Promise<void> {
  await redis.publish(STATE_EVENTS_CHANNEL, JSON.stringify(event)).catch(() => undefined);
}

/**
 * Subscribes to the state events of every process sharing this Redis. Pub/sub delivers in publish order
 * on one connection and keeps nothing for a subscriber that is down: an event published while no
 * subscriber listens is not seen.
 */
export class RedisStateEvents implements StateEvents {
  private constructor(private readonly subscriber: Redis) {}

  static create(url: string): RedisStateEvents {
    return new RedisStateEvents(commandConnection(url));
  }

  async watch(onEvent: (event: StateEvent) => void): Promise<void> {
    this.subscriber.on("message", (channel: string, message: string) => {
      if (channel !== STATE_EVENTS_CHANNEL) return;
      let event: StateEvent;
      try {
        event = JSON.parse(message) as StateEvent;
      } catch {
        return;
      }
      onEvent(event);
    });
    await this.subscriber.subscribe(STATE_EVENTS_CHANNEL);
  }

  async close(): Promise<void> {
    await closeConnection(this.subscriber);
  }
}
