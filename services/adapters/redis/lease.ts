import type { Redis } from "ioredis";

/**
 * A lease in Redis: one owner at a time across processes. The owner renews it by taking it again; a
 * lease not renewed for `ms` (its process died) goes to whoever asks next.
 */
export async function takeLease(redis: Redis, key: string, owner: string, ms: number): Promise<boolean> {
  return (await redis.eval(TAKE, 1, key, owner, ms)) === 1;
}

/** Gives the lease up if `owner` still holds it, so the next one need not wait for it to run out. */
export async function releaseLease(redis: Redis, key: string, owner: string): Promise<void> {
  await redis.eval(RELEASE, 1, key, owner);
}

const TAKE = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;
