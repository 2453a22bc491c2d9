import { describe, expect, it } from "vitest";
import { forbiddenAddressKind, forbiddenLiteralHost, parseAllowHosts } from "./source-addresses.js";

describe("source addresses", () => {
  it("refuses loopback, private, link-local and other non-public addresses", () => {
    for (const [ip, kind] of [
      ["127.0.0.1", "loopback"],
      ["127.255.0.9", "loopback"],
      ["::1", "loopback"],
      ["[::1]", "loopback"],
      ["0.0.0.0", "unspecified"],
      ["::", "unspecified"],
      ["10.1.2.3", "private"],
      ["172.16.0.1", "private"],
      ["172.31.255.255", "private"],
      ["192.168.1.1", "private"],
      ["100.64.0.1", "shared (carrier-grade NAT)"],
      ["169.254.169.254", "link-local"],
      ["fe80::1", "link-local"],
      ["fd00::1", "unique-local (private)"],
      ["::ffff:7f00:1", "IPv4-mapped"],
      ["::ffff:10.0.0.1", "IPv4-mapped"],
      ["224.0.0.1", "multicast"],
      ["64:ff9b::7f00:1", "NAT64 (loopback 127.0.0.1)"],
      ["64:ff9b::10.1.2.3", "NAT64 (private 10.1.2.3)"],
      ["64:ff9b:1::a9fe:a9fe", "NAT64 (link-local 169.254.169.254)"],
      ["2002:c0a8:0101::1", "6to4 (private 192.168.1.1)"],
      ["2002:7f00:1::", "6to4 (loopback 127.0.0.1)"],
      ["2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"],
    ] as const) {
      expect(forbiddenAddressKind(ip), ip).toBe(kind);
    }
  });

  it("lets public addresses through", () => {
    for (const ip of [
      "8.8.8.8",
      "172.32.0.1",
      "100.128.0.1",
      "2001:4860:4860::8888",
      "1.1.1.1",
      // NAT64 and 6to4 addresses of public IPv4 hosts (DNS64's answer for a GitLab on IPv4).
      "64:ff9b::8.8.8.8",
      "64:ff9b::808:808",
      "2002:808:808::1",
    ]) {
      expect(forbiddenAddressKind(ip), ip).toBeUndefined();
    }
  });

  it("checks hosts as written, with the operator's allow-list by host or host:port", () => {
    const check = (url: string, allow: string[] = []) => forbiddenLiteralHost(new URL(url), allow);
    expect(check("http://localhost:6379/")).toBe("loopback");
    expect(check("http://LOCALHOST./x.git")).toBe("loopback");
    expect(check("http://redis.localhost/")).toBe("loopback");
    expect(check("http://[::1]:6379/")).toBe("loopback");
    // Decimal and hex forms are normalised by the URL parser before the check.
    expect(check("http://2130706433/")).toBe("loopback");
    expect(check("http://0x7f000001/")).toBe("loopback");
    expect(check("http://[::ffff:127.0.0.1]/")).toBe("IPv4-mapped");
    expect(check("https://gitlab.example.org/x.git")).toBeUndefined();
    expect(check("http://10.0.0.5:8443/x.git", ["10.0.0.5:8443"])).toBeUndefined();
    expect(check("http://10.0.0.5:9999/x.git", ["10.0.0.5:8443"])).toBe("private");
    expect(check("http://10.0.0.5:9999/x.git", ["10.0.0.5"])).toBeUndefined();
  });

  it("reads the allow-list as hosts, host:ports or URLs", () => {
    expect(parseAllowHosts(" GitLab.Internal , https://git.corp:8443/ ,,10.0.0.5:80")).toEqual([
      "gitlab.internal",
      "git.corp:8443",
      "10.0.0.5:80",
    ]);
    expect(parseAllowHosts(undefined)).toEqual([]);
  });
});
