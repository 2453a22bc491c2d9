import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, expect, it } from "vitest";
import { gunzipSync, gzipSync } from "node:zlib";
import { ParallelGzip } from "./parallel-gzip.js";

async function gzipIn(pieces: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(pieces), new ParallelGzip(6), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) out.push(chunk);
  });
  return Buffer.concat(out);
}

/** Compressible but not trivial: text-like runs mixed with random bytes, like a binary with tables. */
function sample(bytes: number): Buffer {
  const parts: Buffer[] = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const part =
      i % 3 === 0
        ? randomBytes(4096)
        : Buffer.from(`line ${i} of a layer, ${"x".repeat(i % 200)}\n`.repeat(40));
    parts.push(part);
    n += part.length;
  }
  return Buffer.concat(parts).subarray(0, bytes);
}

describe("ParallelGzip", () => {
  it("writes one gzip member that gunzip reads back, byte for byte, empty input included", async () => {
    const data = sample(5 * 1024 * 1024 + 12345);
    expect(gunzipSync(await gzipIn([data])).equals(data)).toBe(true);
    expect(gunzipSync(await gzipIn([])).length).toBe(0);
  });

  it("gives the same bytes however the input is split into writes, with a pinned header", async () => {
    const data = sample(3 * 1024 * 1024 + 7);
    const whole = await gzipIn([data]);
    const pieces: Buffer[] = [];
    for (let i = 0; i < data.length; i += 65_537) pieces.push(data.subarray(i, i + 65_537));
    const split = await gzipIn(pieces);
    const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
    expect(sha(split)).toBe(sha(whole));
    expect([...whole.subarray(0, 10)]).toEqual([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
  });

  it("compresses about as well as single-threaded zlib at the same level", async () => {
    const data = sample(4 * 1024 * 1024);
    const ours = (await gzipIn([data])).length;
    const zlib = gzipSync(data, { level: 6 }).length;
    expect(ours / zlib).toBeLessThan(1.01);
  });
});
