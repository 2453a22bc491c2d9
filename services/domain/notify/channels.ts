import type { Mailer, NotifyStore, WebhookSender } from "../../ports/notify.js";
import type { NotifyChannel } from "../../ports/notify-channel.js";
import { composeMail } from "./message.js";

/** Mail to the tool's maintainers (`tools notify add`), one message to all of them. */
export function mailChannel(store: NotifyStore, mailer: Mailer): NotifyChannel {
  return {
    name: "mail",
    async target(tool) {
      const to = await store.recipients(tool);
      if (to.length === 0) return undefined;
      return {
        send: (n) => mailer.send({ to, ...composeMail(n) }),
        fields: { recipients: to.length },
      };
    },
    close: () => mailer.close(),
  };
}

/** The tool's outgoing webhook: the notification as JSON with its event id, signed with the hook's secret. */
export function webhookChannel(
  store: NotifyStore,
  sender: WebhookSender & { close?(): Promise<void> },
): NotifyChannel {
  return {
    name: "webhook",
    async target(tool) {
      const hook = await store.webhook(tool);
      if (!hook) return undefined;
      return {
        send: (n, key) => sender.post(hook.url, hook.secret, JSON.stringify({ ...n, event_id: key })),
      };
    },
    close: () => sender.close?.() ?? Promise.resolve(),
  };
}
