import { createHash, randomBytes } from "node:crypto";

/** What the sessions need of Redis (ioredis satisfies it). */
export interface SessionKv {
  set(key: string, value: string, mode: "EX", seconds: number): Promise<unknown>;
  get(key: string): Promise<string | null>;
  del(key: string): Promise<number>;
}

export interface Session {
  /** SHA-256 of the token signed in with; checked again on every request (a rotated token ends it). */
  readonly tokenHash: string;
  /** The per-session CSRF token every state-changing form carries. */
  readonly csrf: string;
}

/** How long a dashboard sign-in lasts. */
export const SESSION_TTL_S = 8 * 3600;
export const SESSION_COOKIE = "slipway_session";

/**
 * The cookie's name: over https with the `__Host-` prefix, which browsers accept only without a Domain
 * and with Secure and Path=/, so script on a tool's page (`<tool>.<domain>`, same site) cannot plant a
 * session cookie of its own choosing for Slipway's host.
 */
export function sessionCookie(secure: boolean): string {
  return secure ? `__Host-${SESSION_COOKIE}` : SESSION_COOKIE;
}

/**
 * Dashboard sessions in Redis: the browser holds a random id (HttpOnly, SameSite=Strict cookie), Redis
 * holds the token's hash and a CSRF token under the id's hash, with an expiry. Neither the token nor a
 * usable cookie is stored anywhere.
 */
export class Sessions {
  constructor(private readonly kv: SessionKv) {}

  async create(tokenHash: string): Promise<{ id: string; session: Session }> {
    const id = randomBytes(32).toString("base64url");
    const session: Session = { tokenHash, csrf: randomBytes(24).toString("base64url") };
    await this.kv.set(keyOf(id), JSON.stringify(session), "EX", SESSION_TTL_S);
    return { id, session };
  }

  async get(id: string | undefined): Promise<Session | undefined> {
    if (!id || !/^[\w-]{20,100}$/.test(id)) return undefined;
    const raw = await this.kv.get(keyOf(id));
    return raw ? (JSON.parse(raw) as Session) : undefined;
  }

  async end(id: string | undefined): Promise<void> {
    if (id) await this.kv.del(keyOf(id));
  }
}

function keyOf(id: string): string {
  return `slipway:ui-session:${createHash("sha256").update(id).digest("hex")}`;
}

/** The session cookie's value from a Cookie header. */
export function sessionIdOf(cookie: string | undefined, name = SESSION_COOKIE): string | undefined {
  for (const part of (cookie ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return v.join("=");
  }
  return undefined;
}
