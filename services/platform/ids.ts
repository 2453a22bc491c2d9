import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/**
 * Time-ordered ids (48-bit millisecond time + 60 random bits, Crockford base32, lowercase): they sort by
 * creation, which makes "newest first" listings free, and are safe in URLs and BullMQ job ids.
 */
export function newId(now = Date.now()): string {
  let time = "";
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  const bytes = randomBytes(12);
  let rand = "";
  for (let i = 0; i < 12; i++) rand += ALPHABET[bytes[i]! % 32]!;
  return time + rand;
}
