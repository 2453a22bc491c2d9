import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { Readable } from "node:stream";
import { SlipwayError, TransientError, type ErrorCode } from "../../platform/errors.js";
import type { BlobRef, ImageRegistry } from "../../ports/registry.js";

export interface RegistryClientOptions {
  /** Base URL, e.g. `http://127.0.0.1:5080` or `https://harbor.example.org`. */
  readonly url: string;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  /** Injected for tests; defaults to the global fetch. */
  readonly fetch?: typeof fetch;
}

const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");

type Challenge =
  | { readonly scheme: "unknown" }
  | { readonly scheme: "basic" }
  | { readonly scheme: "bearer"; readonly realm: string; readonly service: string | undefined };

interface SendOptions {
  /** Token scopes the request needs, e.g. `repository:tool-x/web:pull,push`. */
  readonly scopes: readonly string[];
  readonly headers?: Record<string, string>;
  /** A factory, so a request refused with 401 can be sent again with a fresh body. */
  readonly body?: () => Uint8Array | ReadableStream<Uint8Array>;
}

/**
 * The slice of the OCI distribution API Slipway needs, over Node's fetch. Speaks HTTP Basic (the local
 * docker-registry) and the Bearer token flow (Harbor and most hosted registries), learning which from
 * the registry's 401 challenge. Layers are streamed from files, never held in memory.
 */
export class RegistryClient implements ImageRegistry {
  readonly host: string;
  private readonly base: URL;
  private challenge: Challenge = { scheme: "unknown" };
  private readonly tokens = new Map<string, { token: string; expiresAt: number }>();

  private constructor(private readonly options: RegistryClientOptions) {
    this.base = new URL(options.url);
    this.host = this.base.host;
  }

  static create(options: RegistryClientOptions): RegistryClient {
    return new RegistryClient(options);
  }

  async hasBlob(repository: string, digest: string): Promise<boolean> {
    const res = await this.send("HEAD", `/v2/${repository}/blobs/${digest}`, { scopes: [pull(repository)] });
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    return this.fail(res, `checking blob ${short(digest)} in ${repository}`);
  }

  /** Uploads `path` as one monolithic PUT unless the repository has the blob already. */
  async pushBlob(repository: string, blob: BlobRef, path: string): Promise<boolean> {
    if (await this.hasBlob(repository, blob.digest)) return false;
    const actual = (await stat(path)).size;
    if (actual !== blob.size) {
      throw new SlipwayError(
        "export_failed",
        `blob ${short(blob.digest)} is ${actual} bytes on disk, expected ${blob.size}`,
      );
    }
    const location = await this.startUpload(repository, `/v2/${repository}/blobs/uploads/`);
    await this.finishUpload(repository, location, blob, path);
    return true;
  }

  /**
   * Cross-repository mount: links a blob `from` holds into `repository` without sending its bytes.
   * Returns false when the registry declined (it lacks the blob there, or does not mount); the caller
   * then uploads it.
   */
  async mountBlob(repository: string, digest: string, from: string): Promise<boolean> {
    const query = `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`;
    const res = await this.send("POST", `/v2/${repository}/blobs/uploads/${query}`, {
      scopes: [push(repository), pull(from)],
      headers: { "content-length": "0" },
    });
    await res.body?.cancel();
    if (res.status === 201) return true;
    if (res.status === 202) {
      // The registry opened an upload session instead; close it rather than leave it to expire.
      const location = res.headers.get("location");
      if (location) {
        const del = await this.send("DELETE", location, { scopes: [push(repository)] }).catch(
          () => undefined,
        );
        await del?.body?.cancel();
      }
      return false;
    }
    return this.fail(res, `mounting blob ${short(digest)} from ${from} into ${repository}`);
  }

  async putManifest(
    repository: string,
    tag: string,
    manifest: Uint8Array,
    mediaType: string,
  ): Promise<string> {
    const digest = sha256(manifest);
    const res = await this.send("PUT", `/v2/${repository}/manifests/${tag}`, {
      scopes: [push(repository)],
      headers: { "content-type": mediaType, "content-length": String(manifest.byteLength) },
      body: () => manifest,
    });
    if (res.status !== 201) return this.fail(res, `storing manifest ${repository}:${tag}`);
    await res.body?.cancel();
    const stored = res.headers.get("docker-content-digest");
    if (stored && stored !== digest) {
      throw new SlipwayError(
        "export_failed",
        `registry stored manifest ${repository}:${tag} as ${stored}, expected ${digest}`,
      );
    }
    return digest;
  }

  async getManifest(
    repository: string,
    reference: string,
  ): Promise<{ digest: string; body: Uint8Array } | undefined> {
    const res = await this.send("GET", `/v2/${repository}/manifests/${reference}`, {
      scopes: [pull(repository)],
      headers: { accept: MANIFEST_ACCEPT },
    });
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    if (res.status !== 200) return this.fail(res, `reading manifest ${repository}:${reference}`);
    const body = new Uint8Array(await res.arrayBuffer());
    return { digest: sha256(body), body };
  }

  /** A small blob's bytes (an image config), checked against its digest. */
  async getBlob(repository: string, digest: string): Promise<Uint8Array> {
    const res = await this.send("GET", `/v2/${repository}/blobs/${digest}`, { scopes: [pull(repository)] });
    if (res.status !== 200) return this.fail(res, `reading blob ${short(digest)} of ${repository}`);
    const body = new Uint8Array(await res.arrayBuffer());
    if (sha256(body) !== digest)
      throw new SlipwayError(
        "export_failed",
        `blob ${short(digest)} of ${repository} does not match its digest`,
      );
    return body;
  }

  /**
   * Deletes a manifest by digest (the registry runs with `storage.delete.enabled`); every tag pointing at
   * it goes with it. False when it was already gone. The blobs stay until `garbage-collect` runs.
   */
  async deleteManifest(repository: string, digest: string): Promise<boolean> {
    const res = await this.send("DELETE", `/v2/${repository}/manifests/${digest}`, {
      scopes: [`repository:${repository}:delete`],
    });
    await res.body?.cancel();
    if (res.status === 404) return false;
    if (res.status !== 202) return this.fail(res, `deleting manifest ${repository}@${short(digest)}`);
    return true;
  }

  private async startUpload(repository: string, path: string): Promise<string> {
    const res = await this.send("POST", path, {
      scopes: [push(repository)],
      headers: { "content-length": "0" },
    });
    await res.body?.cancel();
    const location = res.headers.get("location");
    if (res.status !== 202 || !location) return this.fail(res, `starting an upload to ${repository}`);
    return location;
  }

  private async finishUpload(
    repository: string,
    location: string,
    blob: BlobRef,
    path: string,
  ): Promise<void> {
    // The Location is used verbatim (it may carry state in its query); only the digest is appended.
    const url = new URL(location, this.base).href;
    const target = `${url}${url.includes("?") ? "&" : "?"}digest=${encodeURIComponent(blob.digest)}`;
    const res = await this.send("PUT", target, {
      scopes: [push(repository)],
      headers: { "content-type": "application/octet-stream", "content-length": String(blob.size) },
      body: () => Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>,
    });
    await res.body?.cancel();
    if (res.status !== 201) return this.fail(res, `uploading blob ${short(blob.digest)} to ${repository}`);
  }

  /** Sends a request, answering one 401 challenge (Basic or Bearer) and retrying once. */
  private async send(method: string, pathOrUrl: string, options: SendOptions): Promise<Response> {
    const url = new URL(pathOrUrl, this.base);
    // Credentials go only to the registry itself, never to another host a Location points at.
    const sameOrigin = url.origin === this.base.origin;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { ...options.headers };
      const scheme = this.challenge.scheme;
      const authorization = sameOrigin ? await this.authorization(options.scopes, attempt > 0) : undefined;
      if (authorization) headers.authorization = authorization;
      let res: Response;
      try {
        res = await (this.options.fetch ?? fetch)(url, {
          method,
          headers,
          body: options.body?.(),
          redirect: "follow",
          ...(options.body ? { duplex: "half" } : {}),
        });
      } catch (e) {
        throw new TransientError(
          `registry ${this.host} unreachable (${method} ${url.pathname}): ${messageOf(e)}`,
          {
            cause: e,
          },
        );
      }
      if (res.status !== 401 || attempt > 0 || !sameOrigin) return res;
      const learned = parseChallenge(res.headers.get("www-authenticate"));
      if (!learned) return res;
      // A 401 to Basic credentials asking for Basic again means they are wrong. (Compared with what this
      // request sent, not the shared state: parallel requests may have learned the scheme meanwhile.)
      if (learned.scheme === "basic" && scheme === "basic" && authorization) return res;
      this.challenge = learned;
      await res.body?.cancel();
    }
  }

  private async authorization(scopes: readonly string[], fresh: boolean): Promise<string | undefined> {
    const { username, password } = this.options;
    switch (this.challenge.scheme) {
      case "unknown":
        return undefined;
      case "basic":
        return username === undefined ? undefined : basic(username, password ?? "");
      case "bearer":
        return `Bearer ${await this.token(this.challenge, scopes, fresh)}`;
    }
  }

  private async token(
    challenge: { realm: string; service: string | undefined },
    scopes: readonly string[],
    fresh: boolean,
  ): Promise<string> {
    const key = [...scopes].sort().join(" ");
    const cached = this.tokens.get(key);
    if (cached && !fresh && cached.expiresAt > Date.now()) return cached.token;
    const url = new URL(challenge.realm);
    if (challenge.service) url.searchParams.set("service", challenge.service);
    for (const scope of scopes) url.searchParams.append("scope", scope);
    const headers: Record<string, string> = {};
    if (this.options.username !== undefined) {
      headers.authorization = basic(this.options.username, this.options.password ?? "");
    }
    let res: Response;
    try {
      res = await (this.options.fetch ?? fetch)(url, { headers });
    } catch (e) {
      throw new TransientError(`registry token service ${url.host} unreachable: ${messageOf(e)}`, {
        cause: e,
      });
    }
    if (res.status !== 200) return this.fail(res, `getting a token for ${scopes.join(" ")}`);
    const json = (await res.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = json.token ?? json.access_token;
    if (!token)
      throw new SlipwayError("export_failed", `registry token service ${url.host} returned no token`);
    // Renew ten seconds early so a token never expires between the check and the request.
    const lifetime = Math.max((json.expires_in ?? 60) - 10, 1);
    this.tokens.set(key, { token, expiresAt: Date.now() + lifetime * 1000 });
    return token;
  }

  /** Turns an unexpected response into a Slipway error carrying the registry's own error code. */
  private async fail(res: Response, what: string): Promise<never> {
    const text = await res.text().catch(() => "");
    const codes = registryErrors(text);
    // HEAD answers carry no body, so the code is inferred from the status there.
    const implied = STATUS_CODES[res.status];
    if (codes.length === 0 && implied) codes.push(implied);
    const reason = codes.length > 0 ? `${codes.join("; ")} (HTTP ${res.status})` : `HTTP ${res.status}`;
    const hint = res.status === 401 ? "; the registry credentials Slipway holds were rejected" : "";
    const message = `registry ${this.host} refused ${what}: ${reason}${hint}`;
    const details = { status: res.status, registry_code: codes[0]?.split(":")[0] };
    if (res.status === 429 || res.status >= 500) throw new TransientError(message);
    const code: ErrorCode =
      res.status === 401
        ? "unauthorized"
        : res.status === 403
          ? "forbidden"
          : res.status === 404
            ? "not_found"
            : "export_failed";
    throw new SlipwayError(code, message, { details });
  }
}

const STATUS_CODES: Record<number, string> = {
  401: "UNAUTHORIZED",
  403: "DENIED",
  404: "NOT_FOUND",
  429: "TOOMANYREQUESTS",
};

function registryErrors(text: string): string[] {
  try {
    const parsed = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
    return (parsed.errors ?? []).map((e) => `${e.code ?? "UNKNOWN"}: ${e.message ?? ""}`.trim());
  } catch {
    return [];
  }
}

/** Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`. */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined;
  const match = /^\s*(\w+)\s*(.*)$/.exec(header);
  if (!match) return undefined;
  const scheme = (match[1] ?? "").toLowerCase();
  const params = new Map<string, string>();
  for (const p of (match[2] ?? "").matchAll(/(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))/g)) {
    params.set((p[1] ?? "").toLowerCase(), p[2] ?? p[3] ?? "");
  }
  if (scheme === "basic") return { scheme: "basic" };
  const realm = params.get("realm");
  if (scheme === "bearer" && realm) return { scheme: "bearer", realm, service: params.get("service") };
  return undefined;
}

const pull = (repository: string) => `repository:${repository}:pull`;
const push = (repository: string) => `repository:${repository}:pull,push`;
const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const sha256 = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
const short = (digest: string) => digest.slice(0, 19);
const messageOf = (e: unknown) =>
  e instanceof Error
    ? e.cause instanceof Error
      ? `${e.message}: ${e.cause.message}`
      : e.message
    : String(e);
