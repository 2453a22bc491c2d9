import type { Redis } from "ioredis";
import type { CryptoBox } from "../../platform/crypto-box.js";
import type { ForgeLinkStore, GitlabLinkRecord } from "../../ports/forge-links.js";

const P = "slipway:";
/** Long enough for any build to end; the claims only need to outlive the build they belong to. */
const CLAIM_TTL_S = 7 * 24 * 3600;

/** The stored JSON: the two credentials replaced by CryptoBox values bound to the tool. */
type Sealed = Omit<GitlabLinkRecord, "deploy_token" | "access_token"> & {
  readonly deploy_token_box: string;
  readonly access_token_box: string;
};

/**
 * GitLab links in Redis (`slipway:forge-link:<tool>`). The access token and the deploy token are sealed
 * with CryptoBox, each bound to its tool and purpose by the context, so a value copied into another
 * tool's record (or swapped between the two fields) does not open.
 */
export class RedisForgeLinks implements ForgeLinkStore {
  constructor(
    private readonly redis: Redis,
    private readonly box: CryptoBox,
  ) {}

  async get(tool: string): Promise<GitlabLinkRecord | undefined> {
    const raw = await this.redis.get(`${P}forge-link:${tool}`);
    if (raw === null) return undefined;
    const { deploy_token_box, access_token_box, ...rest } = JSON.parse(raw) as Sealed;
    return {
      ...rest,
      deploy_token: this.box.open(deploy_token_box, `gitlab-deploy-token:${tool}`),
      access_token: this.box.open(access_token_box, `gitlab-token:${tool}`),
    };
  }

  async put(link: GitlabLinkRecord): Promise<void> {
    const { deploy_token, access_token, ...rest } = link;
    const sealed: Sealed = {
      ...rest,
      deploy_token_box: this.box.seal(deploy_token, `gitlab-deploy-token:${link.tool}`),
      access_token_box: this.box.seal(access_token, `gitlab-token:${link.tool}`),
    };
    await this.redis.set(`${P}forge-link:${link.tool}`, JSON.stringify(sealed));
  }

  async delete(tool: string): Promise<void> {
    await this.redis.del(`${P}forge-link:${tool}`);
  }

  async claimStatus(buildId: string, step: "pending" | "running" | "final"): Promise<boolean> {
    const ok = await this.redis.set(`${P}forge-status:${buildId}:${step}`, "1", "EX", CLAIM_TTL_S, "NX");
    return ok !== null;
  }
}
