import { smtpChannel } from "../../adapters/smtp/channel.js";
import { outgoingWebhookChannel } from "../../adapters/webhook-out/channel.js";
import type { NotifyChannelFactory } from "../../ports/notify-channel.js";

/**
 * Every notification channel, tried in this order for each notification. A new channel (Matrix, IRC)
 * is a folder under services/adapters/ exporting a `NotifyChannelFactory` (ports/notify-channel.ts),
 * and one line here.
 */
export const NOTIFY_CHANNELS: readonly NotifyChannelFactory[] = [smtpChannel, outgoingWebhookChannel];
