import dns from "node:dns";
import type { LookupFunction } from "node:net";
import { Agent, buildConnector } from "undici";
import { SlipwayError } from "../../platform/errors.js";
import {
  describeKind,
  forbiddenAddressKind,
  forbiddenLiteralHost,
  isAllowedHost,
} from "../../platform/source-addresses.js";

/** Builds the error for a connection refused because `address` (of `host`) is of a forbidden `kind`. */
export type RefusalMessage = (host: string, address: string, kind: string) => string;

/**
 * dns.lookup, failing when any address the name resolves to is not a public one. As a connection's
 * `lookup` hook it runs for every new connection, after DNS, so a name that resolves to loopback, or
 * re-resolves there after an earlier check (DNS rebinding), is refused.
 */
export function publicOnlyLookup(host: string, message: RefusalMessage): LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, "", 0);
      const bad = addresses.find((a) => forbiddenAddressKind(a.address) !== undefined);
      if (bad)
        return callback(refusal(host, bad.address, forbiddenAddressKind(bad.address)!, message), "", 0);
      if (options.all)
        return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, addresses);
      const first = addresses[0];
      if (!first)
        return callback(Object.assign(new Error(`${hostname} has no address`), { code: "ENOTFOUND" }), "", 0);
      callback(null, first.address, first.family);
    });
  };
}

/** The `source_rejected` error for a refused address; its code is what callers recognise. */
export function refusal(host: string, address: string, kind: string, message: RefusalMessage): SlipwayError {
  return new SlipwayError("source_rejected", message(host, address, kind), {
    details: { host, address, kind },
  });
}

/** The message for an outside service (GitLab) on an address that is not public. */
export const serviceRefusal =
  (service: string): RefusalMessage =>
  (host, address, kind) => {
    const at = address === new URL(`http://${host}`).hostname ? "" : ` (it resolves to ${address})`;
    return `${service} at ${host}${at} is ${describeKind(kind)}: Slipway calls ${service} only on public addresses. Use the instance's public URL, or ask the operator to add ${host} to SLIPWAY_SOURCE_ALLOW_HOSTS`;
  };

/**
 * An undici dispatcher for Node's `fetch` that connects only to public addresses unless the host is on
 * the operator's allow-list. Every connection goes through it, redirects included, so a public server
 * cannot bounce a request to loopback; IP literals skip DNS and are checked before connecting.
 */
export function publicOnlyDispatcher(allowHosts: readonly string[], message: RefusalMessage): Agent {
  return new Agent({
    connect(options, callback) {
      const target = new URL(
        `${options.protocol}//${options.hostname}${options.port ? `:${options.port}` : ""}`,
      );
      if (isAllowedHost(target, allowHosts)) return buildConnector({})(options, callback);
      const literal = forbiddenLiteralHost(target, allowHosts);
      if (literal !== undefined) {
        callback(refusal(target.host, target.hostname, literal, message), null);
        return;
      }
      buildConnector({ lookup: publicOnlyLookup(target.host, message) })(options, callback);
    },
  });
}
