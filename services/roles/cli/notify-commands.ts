import type { Command } from "commander";
import { InputError } from "../../platform/errors.js";
import type { ApiClient } from "./client.js";
import { jsonOption, print } from "./options.js";

interface SettingsView {
  tool: string;
  recipients: string[];
  email_enabled: boolean;
  webhook: { url: string } | null;
}

const ACTIONS = ["list", "add", "remove", "webhook", "unset-webhook"] as const;

/**
 * `tools notify <tool> list | add <email> | remove <email> | webhook <url> | unset-webhook`: thin calls to
 * `/api/v1/tools/:tool/notify`.
 */
export function registerNotifyCommands(tools: Command, client: () => Promise<ApiClient>): void {
  tools
    .command("notify <tool> <action> [value]")
    .description(
      "who is told about failed builds, deploys, rollbacks and job runs: list | add <email> | remove <email> | webhook <url> | unset-webhook",
    )
    .addOption(jsonOption())
    .action(async (tool: string, action: string, value: string | undefined, o: { json?: boolean }) => {
      const base = `/api/v1/tools/${encodeURIComponent(tool)}/notify`;
      const api = await client();
      const needValue = (what: string): string => {
        if (value === undefined || value === "")
          throw new InputError(`tools notify ${tool} ${action} needs ${what}`);
        return value;
      };
      switch (action as (typeof ACTIONS)[number]) {
        case "list": {
          const s = await api.request<SettingsView>("GET", base);
          print(!!o.json, s, () =>
            [
              `Recipients of ${tool}: ${s.recipients.length > 0 ? s.recipients.join(", ") : "none"}`,
              ...(s.email_enabled ? [] : ["  (this server sends no mail: SLIPWAY_SMTP_URL is not set)"]),
              `Webhook: ${s.webhook ? s.webhook.url : "none"}`,
            ].join("\n"),
          );
          return;
        }
        case "add": {
          const r = await api.request<{ address: string; added: boolean }>("POST", `${base}/recipients`, {
            address: needValue("an email address"),
          });
          print(!!o.json, r, () =>
            r.added ? `${r.address} is told about ${tool}.` : `${r.address} was already told about ${tool}.`,
          );
          return;
        }
        case "remove": {
          const address = needValue("an email address");
          const r = await api.request<{ address: string }>(
            "DELETE",
            `${base}/recipients/${encodeURIComponent(address)}`,
          );
          print(!!o.json, r, () => `${r.address} is no longer told about ${tool}.`);
          return;
        }
        case "webhook": {
          const r = await api.request<{ url: string; secret: string }>("PUT", `${base}/webhook`, {
            url: needValue("a URL"),
          });
          print(!!o.json, r, () =>
            [
              `Notifications of ${tool} are POSTed to ${r.url}.`,
              `  secret: ${r.secret}`,
              `  (shown once) each body is signed: x-slipway-signature: sha256=<HMAC-SHA256 of the body>`,
            ].join("\n"),
          );
          return;
        }
        case "unset-webhook": {
          const r = await api.request<{ deleted: boolean }>("DELETE", `${base}/webhook`);
          print(!!o.json, r, () => `${tool} has no notification webhook any more.`);
          return;
        }
        default:
          throw new InputError(`unknown action "${action}": use one of ${ACTIONS.join(", ")}`);
      }
    });
}
