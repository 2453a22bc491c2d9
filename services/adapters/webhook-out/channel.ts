import { webhookChannel } from "../../domain/notify/channels.js";
import type { NotifyChannelFactory } from "../../ports/notify-channel.js";
import { HttpWebhookSender } from "./sender.js";

/** Tools' outgoing webhooks, to public addresses only (or the operator's `SLIPWAY_SOURCE_ALLOW_HOSTS`). */
export const outgoingWebhookChannel: NotifyChannelFactory = ({ config, store }) =>
  webhookChannel(store, HttpWebhookSender.create(config.sourceAllowHosts));
