import net from "node:net";

/**
 * Which network addresses the builder may fetch a tool's source from. A source URL comes from a tool's
 * owner (a webhook payload, a stored source), so without this a tool could aim the builder at Redis, the
 * registry or any other service on loopback or the private network (SSRF). Outside an operator's
 * allow-list, only public unicast addresses are fetched from.
 */
const RANGES: readonly (readonly [kind: string, family: "ipv4" | "ipv6", prefix: string, bits: number])[] = [
  ["unspecified", "ipv4", "0.0.0.0", 8],
  ["private", "ipv4", "10.0.0.0", 8],
  ["shared (carrier-grade NAT)", "ipv4", "100.64.0.0", 10],
  ["loopback", "ipv4", "127.0.0.0", 8],
  ["link-local", "ipv4", "169.254.0.0", 16],
  ["private", "ipv4", "172.16.0.0", 12],
  ["reserved", "ipv4", "192.0.0.0", 24],
  ["private", "ipv4", "192.168.0.0", 16],
  ["benchmarking", "ipv4", "198.18.0.0", 15],
  ["multicast", "ipv4", "224.0.0.0", 4],
  ["reserved", "ipv4", "240.0.0.0", 4],
  ["unspecified", "ipv6", "::", 128],
  ["loopback", "ipv6", "::1", 128],
  // An IPv4 address written as IPv6 (`[::ffff:127.0.0.1]`) reaches the IPv4 host: none is fetched from.
  ["IPv4-mapped", "ipv6", "::ffff:0:0", 96],
  // Teredo tunnels to an address hidden (XOR-ed) in the rest; nothing current needs it, so none is fetched.
  ["Teredo", "ipv6", "2001::", 32],
  ["unique-local (private)", "ipv6", "fc00::", 7],
  ["link-local", "ipv6", "fe80::", 10],
  ["multicast", "ipv6", "ff00::", 8],
];

const lists = RANGES.map(([kind, family, prefix, bits]) => {
  const list = new net.BlockList();
  list.addSubnet(prefix, bits, family);
  return { kind, family, list };
});

/**
 * IPv6 prefixes that carry an IPv4 address the packet is delivered to: NAT64 (`64:ff9b::/96` and the
 * local-use `64:ff9b:1::/48`, the last 32 bits) and 6to4 (`2002::/16`, bits 16–48). Such an address is
 * judged by the IPv4 address inside, so `[64:ff9b::7f00:1]` is loopback while DNS64 answers for a public
 * GitLab still work.
 */
const EMBEDDING: readonly (readonly [name: string, list: net.BlockList, firstByte: number])[] = [
  ["NAT64", subnet("64:ff9b::", 96), 12],
  ["NAT64", subnet("64:ff9b:1::", 48), 12],
  ["6to4", subnet("2002::", 16), 2],
];

function subnet(prefix: string, bits: number): net.BlockList {
  const list = new net.BlockList();
  list.addSubnet(prefix, bits, "ipv6");
  return list;
}

/** Why an IP address is not fetched from ("loopback", "private", …), or undefined for a public one. */
export function forbiddenAddressKind(address: string): string | undefined {
  const ip = address.replace(/^\[|\]$/g, "");
  const family = net.isIPv4(ip) ? "ipv4" : net.isIPv6(ip) ? "ipv6" : undefined;
  if (family === undefined) return undefined;
  const kind = lists.find((l) => l.family === family && l.list.check(ip, family))?.kind;
  if (kind !== undefined || family === "ipv4") return kind;
  for (const [name, list, firstByte] of EMBEDDING) {
    if (!list.check(ip, "ipv6")) continue;
    const inner = ipv6Bytes(ip)
      .slice(firstByte, firstByte + 4)
      .join(".");
    const innerKind = forbiddenAddressKind(inner);
    return innerKind === undefined ? undefined : `${name} (${innerKind} ${inner})`;
  }
  return undefined;
}

/** The 16 bytes of a valid IPv6 address, `::` and a trailing dotted quad expanded. */
function ipv6Bytes(ip: string): number[] {
  let text = ip.split("%")[0]!;
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const groups = (part: string) => (part === "" ? [] : part.split(":"));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  return all.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]);
}

/**
 * Whether a URL's host is on the operator's allow-list. Entries are `host` (any port) or `host:port`,
 * compared without letter case; `[::1]:8080` for IPv6.
 */
export function isAllowedHost(url: URL, allowHosts: readonly string[]): boolean {
  const host = url.host.toLowerCase();
  const hostname = url.hostname.toLowerCase();
  return allowHosts.some((entry) => entry === host || entry === hostname);
}

/**
 * Why a URL's host, as written, is never fetched from (a loopback name or a non-public IP literal), or
 * undefined when it is allowed or must first be resolved. Names are checked again after resolution, on
 * every connection, by the fetcher.
 */
export function forbiddenLiteralHost(url: URL, allowHosts: readonly string[]): string | undefined {
  if (isAllowedHost(url, allowHosts)) return undefined;
  // A trailing dot is the same name, fully qualified: `localhost.` is still this machine.
  const hostname = url.hostname.toLowerCase().replace(/\.$/, "");
  if (hostname === "localhost" || hostname.endsWith(".localhost")) return "loopback";
  return forbiddenAddressKind(hostname);
}

/** The operator's list as written in the environment: host names, `host:port`s or URLs, comma-separated. */
export function parseAllowHosts(raw: string | undefined): string[] {
  return (raw ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "")
    .map((s) => (s.includes("://") && URL.canParse(s) ? new URL(s).host : s));
}

/** "a loopback address", "an IPv4-mapped address": for messages. */
export function describeKind(kind: string): string {
  return `${/^[aeiou]/i.test(kind) ? "an" : "a"} ${kind} address`;
}
