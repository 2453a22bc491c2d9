import type { Redis } from "ioredis";
import type { CryptoBox } from "../../platform/crypto-box.js";
import type { PullCredentialRecord, PullCredentialStore } from "../../ports/registry-access.js";

const P = "slipway:registry-pull:";

type Sealed = Omit<PullCredentialRecord, "password"> & { readonly password_box: string };

/**
 * Each tool's registry pull credential in Redis (`slipway:registry-pull:<tool>`), the secret sealed
 * with CryptoBox and bound to the tool, so a value copied into another tool's record does not open.
 */
export class RedisPullCredentials implements PullCredentialStore {
  constructor(
    private readonly redis: Redis,
    private readonly box: CryptoBox,
  ) {}

  async get(tool: string): Promise<PullCredentialRecord | undefined> {
    const raw = await this.redis.get(`${P}${tool}`);
    if (raw === null) return undefined;
    const { password_box, ...rest } = JSON.parse(raw) as Sealed;
    return { ...rest, password: this.box.open(password_box, `registry-pull:${tool}`) };
  }

  async put(record: PullCredentialRecord): Promise<void> {
    const { password, ...rest } = record;
    const sealed: Sealed = { ...rest, password_box: this.box.seal(password, `registry-pull:${record.tool}`) };
    await this.redis.set(`${P}${record.tool}`, JSON.stringify(sealed));
  }

  async delete(tool: string): Promise<void> {
    await this.redis.del(`${P}${tool}`);
  }
}
