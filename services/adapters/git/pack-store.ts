import { open, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { GitHttpResponse, HttpClient } from "isomorphic-git";
import { Pack, type GitObject } from "./pack.js";

/** Pack data is written to disk in slices of about this size, not chunk by chunk. */
const WRITE_BATCH_BYTES = 1024 * 1024;

/**
 * The packs of one fetch, received and indexed by us rather than by isomorphic-git. isomorphic-git still
 * speaks the protocol (ref discovery, wants, shallow and deepen, credentials, redirects through our HTTP
 * client), but its fetch collects the whole pack in memory, copies it, and indexes it with a pure-JS
 * inflate and an object-by-object SHA-1 (most of a fetch's CPU and twice the pack in memory). `receive`
 * wraps the HTTP client so that the pack in the upload-pack response is streamed to disk and indexed here
 * with Node's zlib and crypto; isomorphic-git is handed the response without it (it writes nothing for an
 * empty pack) and finds our `.pack`/`.idx` in `objects/pack` like any others when it deepens.
 */
export class PackStore {
  private readonly packs: Pack[] = [];
  private received = 0;

  constructor(private readonly gitdir: string) {}

  /** `http`, with the pack of each upload-pack response taken out of it and added to this store. */
  receive(http: HttpClient): HttpClient {
    return {
      request: async (request) => {
        const res = await http.request(request);
        if (request.method !== "POST" || !request.url.endsWith("/git-upload-pack")) return res;
        if (res.statusCode !== 200 || !res.body) return res;
        const tmp = path.join(this.gitdir, "objects/pack", `tmp-${++this.received}.pack`);
        try {
          const lines = await demux(res.body, tmp);
          await this.add(tmp);
          return { ...res, body: oneChunk(lines) } satisfies GitHttpResponse;
        } finally {
          await rm(tmp, { force: true });
        }
      },
    };
  }

  read(oid: string): GitObject | undefined {
    for (const pack of this.packs) {
      const object = pack.read(oid);
      if (object) return object;
    }
    return undefined;
  }

  /** Reads an object that the tree or commit being checked out names; a missing one is the remote's fault. */
  need(oid: string, type: GitObject["type"]): Buffer {
    const object = this.read(oid);
    if (object?.type !== type) {
      throw new Error(
        `the remote did not send the ${type} ${oid}${object ? ` (it is a ${object.type})` : ""}`,
      );
    }
    return object.data;
  }

  private async add(file: string): Promise<void> {
    const bytes = await readFile(file).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined; // no pack data at all: nothing was missing
      throw error;
    });
    // A pack of no objects is 32 bytes: header and checksum. git keeps nothing for it either.
    if (bytes === undefined || (bytes.length === 32 && bytes.readUInt32BE(8) === 0)) return;
    const pack = Pack.index(bytes, (oid) => this.read(oid));
    const base = path.join(this.gitdir, "objects/pack", `pack-${pack.sha}`);
    await rename(file, `${base}.pack`);
    await writeFile(`${base}.idx`, pack.idx());
    this.packs.push(pack);
  }
}

/**
 * Splits an upload-pack response (protocol v1, side-band-64k): band 1, the pack, goes to `file`; band 2,
 * progress, is dropped; band 3 is the remote's error; every other pkt-line (shallow, unshallow, ACK, NAK)
 * is kept, to be given to isomorphic-git.
 */
async function demux(body: AsyncIterableIterator<Uint8Array>, file: string): Promise<Buffer[]> {
  const kept: Buffer[] = [];
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  const flush = async (): Promise<void> => {
    if (pendingBytes === 0) return;
    handle ??= await open(file, "wx");
    await handle.writev(pending);
    pending = [];
    pendingBytes = 0;
  };
  try {
    let buffer: Buffer = Buffer.alloc(0);
    for await (const chunk of body) {
      const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      buffer = buffer.length === 0 ? bytes : Buffer.concat([buffer, bytes]);
      let pos = 0;
      while (buffer.length - pos >= 4) {
        const length = parseInt(buffer.toString("latin1", pos, pos + 4), 16);
        if (Number.isNaN(length) || (length > 0 && length < 4)) {
          throw new Error(`the remote's upload-pack answer is not in pkt-line format`);
        }
        if (length === 0) {
          pos += 4;
          continue;
        }
        if (buffer.length - pos < length) break;
        const line = buffer.subarray(pos, pos + length);
        pos += length;
        const band = line[4];
        switch (band) {
          case 1:
            pending.push(line.subarray(5));
            pendingBytes += line.length - 5;
            if (pendingBytes >= WRITE_BATCH_BYTES) await flush();
            break;
          case 2:
            break;
          case 3:
            throw new Error(`the remote stopped sending: ${line.subarray(5).toString("utf8").trim()}`);
          case undefined:
          default:
            kept.push(Buffer.from(line));
        }
      }
      buffer = buffer.subarray(pos);
    }
    if (buffer.length > 0) throw new Error("the remote's upload-pack answer ends in the middle of a line");
    await flush();
    return kept;
  } finally {
    await handle?.close();
  }
}

/** The kept pkt-lines as the body isomorphic-git reads: one chunk, then the end of the stream. */
function oneChunk(lines: Buffer[]): AsyncIterableIterator<Uint8Array> {
  const chunks: Uint8Array[] = [Buffer.concat([...lines, Buffer.from("0000")])];
  const iterator: AsyncIterableIterator<Uint8Array> = {
    next: () => {
      const value = chunks.shift();
      return Promise.resolve(value ? { value, done: false } : { value: undefined, done: true });
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
