import type { NextFunction, Request, Response } from "express";
import { AuthError, ForbiddenError } from "../../platform/errors.js";
import { hashSecret } from "../../platform/secrets.js";
import type { StateStore } from "../../ports/store.js";
import { timingSafeEqual } from "node:crypto";

export type Principal = { readonly kind: "admin" } | { readonly kind: "tool"; readonly tool: string };

declare module "express-serve-static-core" {
  interface Request {
    principal?: Principal;
  }
}

/**
 * Bearer authentication: the admin token, or a tool's token (which acts on that tool only). Tokens are
 * looked up by their SHA-256 hash, so no stored plaintext exists to compare against.
 */
export function bearerAuth(store: StateStore, adminTokenHash: string) {
  const admin = Buffer.from(adminTokenHash, "hex");
  return async (req: Request, _res: Response, next: NextFunction): Promise<void> => {
    const header = req.headers.authorization ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw new AuthError("send an API token as 'Authorization: Bearer <token>'");
    const principal = await principalOfHash(store, admin, hashSecret(match[1]!));
    if (!principal) throw new AuthError("unknown or revoked token");
    req.principal = principal;
    next();
  };
}

/**
 * Whose token hashes to `hash`: the admin (compared in constant time) or a tool whose API token it is.
 * The dashboard's sessions keep the hash and ask again on every request, so a rotated token ends them.
 */
export async function principalOfHash(
  store: Pick<StateStore, "toolBySecretHash">,
  adminHash: Buffer,
  hash: string,
): Promise<Principal | undefined> {
  if (timingSafeEqual(Buffer.from(hash, "hex"), adminHash)) return { kind: "admin" };
  const owner = await store.toolBySecretHash(hash);
  return owner?.kind === "token" ? { kind: "tool", tool: owner.tool } : undefined;
}

export function requireAdmin(req: Request): void {
  if (req.principal?.kind !== "admin") throw new ForbiddenError("only the admin token may do this");
}

/** A tool token reaches its own tool only; the admin token reaches all. */
export function requireTool(req: Request, tool: string): void {
  const p = req.principal;
  if (!p) throw new AuthError();
  if (p.kind === "tool" && p.tool !== tool)
    throw new ForbiddenError(`this token belongs to tool "${p.tool}"`);
}
