import { NotFoundError } from "../../platform/errors.js";
import { newSecret } from "../../platform/secrets.js";
import type { NotifyStore } from "../../ports/notify.js";
import { validateAddress, validateWebhookUrl } from "./policy.js";

/** What `tools notify <tool> list` shows; never the webhook's secret. */
export interface NotifySettingsView {
  readonly tool: string;
  readonly recipients: string[];
  /** False when the server has no SMTP URL: addresses are kept but nothing is mailed. */
  readonly email_enabled: boolean;
  readonly webhook: { readonly url: string } | null;
}

/** A tool's notification settings, as the API and CLI change them (the tool is known to exist). */
export class NotifyService {
  constructor(
    private readonly store: NotifyStore,
    private readonly emailEnabled: boolean,
  ) {}

  async show(tool: string): Promise<NotifySettingsView> {
    const hook = await this.store.webhook(tool);
    return {
      tool,
      recipients: await this.store.recipients(tool),
      email_enabled: this.emailEnabled,
      webhook: hook ? { url: hook.url } : null,
    };
  }

  async addRecipient(tool: string, raw: unknown): Promise<{ address: string; added: boolean }> {
    const address = validateAddress(raw);
    return { address, added: await this.store.addRecipient(tool, address) };
  }

  async removeRecipient(tool: string, raw: unknown): Promise<{ address: string }> {
    const address = validateAddress(raw);
    if (!(await this.store.removeRecipient(tool, address)))
      throw new NotFoundError(`${address} is not among ${tool}'s notification recipients`);
    return { address };
  }

  /** Sets (or replaces) the outgoing webhook with a new secret, returned this once. */
  async setWebhook(tool: string, rawUrl: unknown): Promise<{ url: string; secret: string }> {
    const url = validateWebhookUrl(rawUrl);
    const secret = newSecret("sln");
    await this.store.setWebhook(tool, { url, secret });
    return { url, secret };
  }

  async deleteWebhook(tool: string): Promise<void> {
    if (!(await this.store.deleteWebhook(tool)))
      throw new NotFoundError(`${tool} has no notification webhook`);
  }
}
