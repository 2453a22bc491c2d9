import { createHash } from "node:crypto";
import { crc32, inflateSync } from "node:zlib";

export type ObjectType = "commit" | "tree" | "blob" | "tag";

export interface GitObject {
  readonly type: ObjectType;
  readonly data: Buffer;
}

/** Looks an object up in packs fetched earlier: the base of a ref-delta that is not in this pack. */
export type ExternalObjects = (oid: string) => GitObject | undefined;

const TYPES: Record<number, ObjectType> = { 1: "commit", 2: "tree", 3: "blob", 4: "tag" };
const OFS_DELTA = 6;
/** An object's stated size is the remote's word; a larger object is inflated in chunks of this size. */
const MAX_CHUNK_BYTES = 16 * 1024 * 1024;
const REF_DELTA = 7;
/**
 * Objects kept once inflated or resolved, least recently used dropped first: a delta chain is not
 * inflated again for each link, and the checkout that follows the indexing finds most of a small
 * repository's blobs already inflated instead of inflating every one a second time.
 */
const OBJECT_CACHE_BYTES = 16 * 1024 * 1024;

/**
 * One packfile held in memory once, with the index we built for it: objects are read straight from it
 * with Node's zlib (native, given the object's known offset) instead of isomorphic-git's pure-JS inflate,
 * which re-reads the pack for each object.
 */
export class Pack {
  /** The pack's trailer, its name on disk: `pack-<sha>.pack`. */
  readonly sha: string;
  private readonly byOid = new Map<string, number>();
  /** Sorted by oid once indexed, as the `.idx` file has them. */
  private readonly entries: { oid: string; offset: number; crc: number }[] = [];
  private readonly cache = new ObjectCache(OBJECT_CACHE_BYTES);

  private constructor(
    private readonly bytes: Buffer,
    private readonly headers: ReadonlyMap<number, Header>,
    private readonly external: ExternalObjects,
  ) {
    this.sha = bytes.subarray(bytes.length - 20).toString("hex");
  }

  /**
   * Checks and indexes a pack as `git index-pack` does: the trailer is the SHA-1 of the rest, every
   * object inflates to its stated size, the object count matches, every delta finds its base (in this
   * pack or through `external`; a thin pack's bases must be there). Throws an Error naming what is wrong.
   */
  static index(bytes: Buffer, external: ExternalObjects = () => undefined): Pack {
    if (bytes.length < 32 || bytes.toString("latin1", 0, 4) !== "PACK")
      corrupt("it does not start with PACK");
    const version = bytes.readUInt32BE(4);
    if (version !== 2 && version !== 3) corrupt(`version ${version} is not 2 or 3`);
    const trailer = bytes.subarray(bytes.length - 20);
    const body = bytes.subarray(0, bytes.length - 20);
    if (!createHash("sha1").update(body).digest().equals(trailer)) {
      corrupt("its checksum does not match its content (damaged in transfer?)");
    }
    const count = bytes.readUInt32BE(8);
    const entries: { oid: string; offset: number; crc: number }[] = [];
    const pending: number[] = [];
    const headers = new Map<number, Header>();
    const whole: [number, GitObject][] = [];
    let kept = 0;
    let offset = 12;
    for (let i = 0; i < count; i++) {
      if (offset >= body.length) corrupt(`it ends after ${i} of its ${count} objects`);
      const header = readHeader(body, offset);
      const { data, consumed } = inflateAt(body, header);
      const end = header.dataStart + consumed;
      headers.set(offset, header);
      const crc = crc32(body.subarray(offset, end));
      if (header.kind === "whole") {
        entries.push({ oid: hashObject(header.type, data), offset, crc });
        if ((kept += data.length) <= OBJECT_CACHE_BYTES) whole.push([offset, { type: header.type, data }]);
      } else {
        pending.push(offset);
        entries.push({ oid: "", offset, crc });
      }
      offset = end;
    }
    if (offset !== body.length) corrupt(`${body.length - offset} bytes follow its last object`);

    const pack = new Pack(bytes, headers, external);
    for (const [at, object] of whole) pack.cache.set(at, object);
    const index = new Map(entries.map((e) => [e.offset, e]));
    for (const e of entries) if (e.oid) pack.byOid.set(e.oid, e.offset);
    // A ref-delta may name a base that is itself a delta further on: resolve in rounds until none is left.
    let left = pending;
    while (left.length > 0) {
      const next: number[] = [];
      for (const at of left) {
        const header = headers.get(at)!;
        if (header.kind === "ref" && !pack.byOid.has(header.base) && external(header.base) === undefined) {
          next.push(at);
          continue;
        }
        const object = pack.readAt(at);
        const oid = hashObject(object.type, object.data);
        index.get(at)!.oid = oid;
        pack.byOid.set(oid, at);
      }
      if (next.length === left.length) {
        corrupt(`${next.length} of its deltas have a base that is neither in it nor fetched before`);
      }
      left = next;
    }
    pack.entries.push(...entries.sort((a, b) => (a.oid < b.oid ? -1 : a.oid > b.oid ? 1 : 0)));
    return pack;
  }

  has(oid: string): boolean {
    return this.byOid.has(oid);
  }

  read(oid: string): GitObject | undefined {
    const at = this.byOid.get(oid);
    return at === undefined ? undefined : this.readAt(at);
  }

  private readAt(at: number): GitObject {
    const cached = this.cache.get(at);
    if (cached) return cached;
    const header = this.headers.get(at)!;
    const { data } = inflateAt(this.bytes, header);
    let object: GitObject;
    if (header.kind === "whole") {
      object = { type: header.type, data };
    } else {
      const base =
        header.kind === "ofs"
          ? this.readAt(header.base)
          : (this.read(header.base) ?? this.external(header.base));
      if (!base) corrupt(`the base ${header.base} of the delta at ${at} is missing`);
      object = { type: base.type, data: applyDelta(data, base.data) };
    }
    this.cache.set(at, object);
    return object;
  }

  /** The pack's `.idx` (version 2), byte for byte what `git index-pack` writes for it. */
  idx(): Buffer {
    const n = this.entries.length;
    const large = this.entries.filter((e) => e.offset >= 0x80000000);
    const out = Buffer.alloc(8 + 256 * 4 + n * 28 + large.length * 8 + 40);
    out.writeUInt32BE(0xff744f63, 0);
    out.writeUInt32BE(2, 4);
    let pos = 8 + 256 * 4;
    const fanout = new Uint32Array(256);
    for (const e of this.entries) {
      fanout[parseInt(e.oid.slice(0, 2), 16)]!++;
      out.write(e.oid, pos, "hex");
      pos += 20;
    }
    for (let i = 0, sum = 0; i < 256; i++) out.writeUInt32BE((sum += fanout[i]!), 8 + i * 4);
    for (const e of this.entries) pos = out.writeUInt32BE(e.crc, pos);
    let nextLarge = 0;
    for (const e of this.entries) {
      pos = out.writeUInt32BE(e.offset < 0x80000000 ? e.offset : (0x80000000 | nextLarge++) >>> 0, pos);
    }
    for (const e of large) pos = out.writeBigUInt64BE(BigInt(e.offset), pos);
    pos += this.bytes.copy(out, pos, this.bytes.length - 20);
    createHash("sha1").update(out.subarray(0, pos)).digest().copy(out, pos);
    return out;
  }
}

type Header =
  | { kind: "whole"; type: ObjectType; size: number; dataStart: number }
  | { kind: "ofs"; base: number; size: number; dataStart: number }
  | { kind: "ref"; base: string; size: number; dataStart: number };

function readHeader(pack: Buffer, offset: number): Header {
  let pos = offset;
  let byte = byteAt(pack, pos++);
  const type = (byte >> 4) & 7;
  let size = byte & 15;
  let shift = 4;
  while (byte & 0x80) {
    byte = byteAt(pack, pos++);
    size += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  }
  if (type === OFS_DELTA) {
    // Git's offset encoding: each continuation adds one before shifting, so no value has two spellings.
    byte = byteAt(pack, pos++);
    let distance = byte & 0x7f;
    while (byte & 0x80) {
      byte = byteAt(pack, pos++);
      distance = (distance + 1) * 128 + (byte & 0x7f);
    }
    if (distance > offset || distance === 0) corrupt(`the delta at ${offset} points outside the pack`);
    return { kind: "ofs", base: offset - distance, size, dataStart: pos };
  }
  if (type === REF_DELTA) {
    if (pos + 20 > pack.length) corrupt(`it ends inside the object at ${offset}`);
    return { kind: "ref", base: pack.toString("hex", pos, pos + 20), size, dataStart: pos + 20 };
  }
  const name = TYPES[type];
  if (!name) corrupt(`the object at ${offset} has the unknown type ${type}`);
  return { kind: "whole", type: name, size, dataStart: pos };
}

function byteAt(pack: Buffer, pos: number): number {
  const byte = pack[pos];
  if (byte === undefined) corrupt(`it ends inside an object header at ${pos}`);
  return byte;
}

/**
 * zlib stops at the end of the object's stream and says how many bytes it took: the next object's offset.
 * The output buffer is sized from the header, one byte over so that zlib sees the stream end without
 * asking for another: Node's default 16 KiB chunk would be returned as a view of a 16 KiB allocation
 * (for a 200-byte file, 80 times the memory kept while the object is cached).
 */
function inflateAt(pack: Buffer, header: Header): { data: Buffer; consumed: number } {
  let result: { buffer: Buffer; engine: { bytesWritten: number } };
  const chunkSize = Math.max(64, Math.min(header.size + 1, MAX_CHUNK_BYTES));
  try {
    result = inflateSync(pack.subarray(header.dataStart), {
      info: true,
      chunkSize,
    }) as unknown as typeof result;
  } catch (cause) {
    corrupt(`the object at ${header.dataStart} does not inflate (${(cause as Error).message})`);
  }
  if (result.buffer.length !== header.size) {
    corrupt(
      `the object at ${header.dataStart} is ${result.buffer.length} bytes, not the ${header.size} it states`,
    );
  }
  return { data: result.buffer, consumed: result.engine.bytesWritten };
}

function hashObject(type: ObjectType, data: Buffer): string {
  return createHash("sha1").update(`${type} ${data.length}\0`).update(data).digest("hex");
}

/** Git's delta format: the base's and the result's sizes, then copy-from-base and insert instructions. */
export function applyDelta(delta: Buffer, base: Buffer): Buffer {
  let pos = 0;
  const varint = (): number => {
    let value = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = delta[pos++] ?? corrupt("a delta ends inside its header");
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    return value;
  };
  const baseSize = varint();
  if (baseSize !== base.length) corrupt(`a delta expects a base of ${baseSize} bytes, not ${base.length}`);
  const out = Buffer.allocUnsafe(varint());
  let written = 0;
  while (pos < delta.length) {
    const op = delta[pos++]!;
    if (op & 0x80) {
      let from = 0;
      let length = 0;
      for (let i = 0; i < 4; i++) if (op & (1 << i)) from += delta[pos++]! * 2 ** (8 * i);
      for (let i = 0; i < 3; i++) if (op & (1 << (4 + i))) length += delta[pos++]! * 2 ** (8 * i);
      if (length === 0) length = 0x10000;
      if (from + length > base.length || written + length > out.length)
        corrupt("a delta copies out of range");
      written += base.copy(out, written, from, from + length);
    } else if (op > 0) {
      if (pos + op > delta.length || written + op > out.length) corrupt("a delta inserts out of range");
      written += delta.copy(out, written, pos, pos + op);
      pos += op;
    } else {
      corrupt("a delta has the reserved instruction 0");
    }
  }
  if (written !== out.length) corrupt(`a delta produced ${written} bytes, not the ${out.length} it states`);
  return out;
}

/** A plain Error: the fetcher turns it into `source_fetch_failed` with the URL and ref it came from. */
function corrupt(what: string): never {
  throw new Error(`the remote sent a corrupt pack: ${what}`);
}

/** Least recently used objects dropped first once they hold more than `maxBytes`. */
class ObjectCache {
  private readonly map = new Map<number, GitObject>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get(at: number): GitObject | undefined {
    const value = this.map.get(at);
    if (value) {
      this.map.delete(at);
      this.map.set(at, value);
    }
    return value;
  }

  set(at: number, value: GitObject): void {
    if (value.data.length > this.maxBytes / 4) return;
    this.map.set(at, value);
    this.bytes += value.data.length;
    for (const [key, old] of this.map) {
      if (this.bytes <= this.maxBytes) break;
      this.map.delete(key);
      this.bytes -= old.data.length;
    }
  }
}
