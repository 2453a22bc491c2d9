import nodemailer, { type Transporter } from "nodemailer";
import type { MailMessage, Mailer } from "../../ports/notify.js";

/**
 * Notification mail over SMTP (nodemailer), one connection pool per process. The URL
 * (`SLIPWAY_SMTP_URL`, `smtp://` or `smtps://`, credentials in it) is never logged. `send` resolves once
 * the server accepted the message for every recipient.
 */
export class SmtpMailer implements Mailer {
  private constructor(
    private readonly transport: Transporter,
    private readonly from: string,
  ) {}

  static create(options: { url: string; from: string }): SmtpMailer {
    return new SmtpMailer(
      // Pooling and timeouts go in the URL's query (`?pool=true`) when an operator wants them.
      nodemailer.createTransport(options.url),
      options.from,
    );
  }

  async send(message: MailMessage): Promise<void> {
    await this.transport.sendMail({
      from: this.from,
      to: [...message.to],
      subject: message.subject,
      text: message.text,
    });
  }

  close(): Promise<void> {
    this.transport.close();
    return Promise.resolve();
  }
}
