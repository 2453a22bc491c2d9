import type { Notification } from "../domain/notify/message.js";
import type { Config } from "../platform/env.js";
import type { Logger } from "../platform/logger.js";
import type { NotifyStore } from "./notify.js";

/**
 * One way notifications reach a tool's people: mail and the outgoing webhook today, a chat network
 * next. The notifier tries every channel for each notification and records each channel's delivery
 * separately (`<event>:<name>`), so a redelivered event is not sent again where it already went.
 */
export interface NotifyChannel {
  /** Names its deliveries in the store and in logs; never changed once deliveries were recorded. */
  readonly name: string;
  /** Where the tool's notifications go on this channel, or undefined when the tool set up none. */
  target(tool: string): Promise<ChannelTarget | undefined>;
  /** Ends the channel's connections (server shutdown). */
  close(): Promise<void>;
}

/** One tool's destination on a channel. */
export interface ChannelTarget {
  /**
   * Sends one notification; rejects when the other side did not take it, so it is tried again.
   * `key` names the event (the webhook's `event_id`).
   */
  send(notification: Notification, key: string): Promise<void>;
  /** Logged with the success (no secrets: the mail's recipient count, not the addresses). */
  readonly fields?: Readonly<Record<string, unknown>> | undefined;
}

/** What a channel is made from when the API role starts notifying. */
export interface NotifyChannelDeps {
  readonly config: Pick<Config, "smtp" | "sourceAllowHosts">;
  /** Per-tool settings (recipients, the webhook) and the delivery bookkeeping. */
  readonly store: NotifyStore;
  readonly logger: Logger;
}

/** Makes a channel, or undefined when it is not configured on this server (no SMTP server). */
export type NotifyChannelFactory = (deps: NotifyChannelDeps) => NotifyChannel | undefined;
