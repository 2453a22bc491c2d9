import { availableParallelism } from "node:os";
import { Transform, type TransformCallback } from "node:stream";
import { constants, crc32, deflateRaw } from "node:zlib";

/** Input bytes per independently compressed block; a fixed size, so the output never depends on how writes arrive. */
const BLOCK = 1024 * 1024;
/** Deflate's window: each block is primed with the previous block's last 32 KiB, as pigz does. */
const WINDOW = 32 * 1024;
/** MTIME 0, XFL 0, OS 255 ("unknown"): nothing of the machine or the time in the header. */
const HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff]);
/** An empty final fixed-Huffman block: ends a deflate stream whose blocks each ended with a sync flush. */
const FINAL_BLOCK = Buffer.from([0x03, 0x00]);

/**
 * gzip that uses every core, for the layers a build exports (a Node.js layer is 120 MB of binary, 5 s of
 * single-threaded zlib). The input is cut into fixed 1 MiB blocks; each is deflated on libuv's thread
 * pool with the previous block's tail as its dictionary and ends with a sync flush, and the pieces are
 * written in order — pigz's method. The output is a single ordinary gzip member that any gunzip reads;
 * it depends only on the input bytes (and the zlib version), not on how many blocks ran at once or on
 * the machine, so the same tar always gives the same digest.
 */
export class ParallelGzip extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private previousTail: Buffer | undefined;
  private readonly inFlight: Promise<Buffer>[] = [];
  private crc = 0;
  private length = 0;
  private readonly maxInFlight: number;

  constructor(private readonly level = 6) {
    super();
    this.maxInFlight = Math.max(2, availableParallelism()) + 1;
    this.push(HEADER);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.crc = crc32(chunk, this.crc);
    this.length += chunk.length;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.drainFull().then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    const rest = this.takeBlock(this.pendingBytes);
    if (rest.length > 0) this.start(rest);
    this.writeOut(0)
      .then(() => {
        const trailer = Buffer.alloc(8);
        trailer.writeUInt32LE(this.crc >>> 0, 0);
        trailer.writeUInt32LE(this.length % 2 ** 32, 4);
        this.push(FINAL_BLOCK);
        this.push(trailer);
        callback();
      })
      .catch(callback);
  }

  /** Starts a deflate for every full block buffered, waiting for the oldest when too many are running. */
  private async drainFull(): Promise<void> {
    while (this.pendingBytes >= BLOCK) {
      this.start(this.takeBlock(BLOCK));
      await this.writeOut(this.maxInFlight - 1);
    }
  }

  private start(block: Buffer): void {
    const dictionary = this.previousTail;
    this.previousTail = Buffer.from(block.subarray(Math.max(0, block.length - WINDOW)));
    const deflated = new Promise<Buffer>((resolve, reject) => {
      deflateRaw(
        block,
        {
          level: this.level,
          memLevel: 8,
          strategy: constants.Z_DEFAULT_STRATEGY,
          finishFlush: constants.Z_SYNC_FLUSH,
          ...(dictionary ? { dictionary } : {}),
        },
        (error, out) => (error ? reject(error) : resolve(out)),
      );
    });
    // Awaited in order by writeOut; after a failure the later ones are never awaited, which must not
    // become an unhandled rejection.
    deflated.catch(() => undefined);
    this.inFlight.push(deflated);
  }

  /** Pushes finished blocks, in order, until at most `keep` are still running. */
  private async writeOut(keep: number): Promise<void> {
    while (this.inFlight.length > keep) this.push(await this.inFlight.shift()!);
  }

  private takeBlock(n: number): Buffer {
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    const block = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    return block;
  }
}
