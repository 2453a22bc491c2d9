import { mailChannel } from "../../domain/notify/channels.js";
import type { NotifyChannelFactory } from "../../ports/notify-channel.js";
import { SmtpMailer } from "./mailer.js";

/** Notification mail over SMTP (`SLIPWAY_SMTP_URL`); off when no server is set. */
export const smtpChannel: NotifyChannelFactory = ({ config, store, logger }) => {
  const { smtp } = config;
  if (!smtp) {
    logger.info({}, "notification mail is off: SLIPWAY_SMTP_URL is not set (webhooks still notify)");
    return undefined;
  }
  logger.info({ from: smtp.from }, "notification mail is on");
  return mailChannel(store, SmtpMailer.create(smtp));
};
