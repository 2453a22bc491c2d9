import type { Redis } from "ioredis";
import type { CryptoBox } from "../../platform/crypto-box.js";
import {
  STATUS_STEPS,
  type ForgeLinkStore,
  type GitlabLinkRecord,
  type StatusStep,
} from "../../ports/forge-links.js";

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

  async claimStatus(buildId: string, step: StatusStep, token: string): Promise<boolean> {
    const claimed = await this.redis.eval(
      CLAIM,
      1,
      `${P}forge-status:${buildId}`,
      STATUS_STEPS.indexOf(step),
      token,
      CLAIM_TTL_S,
    );
    return claimed === 1;
  }
}

/**
 * KEYS: the build's claim (`<step index>:<token>`). ARGV: step index, token, TTL. A later step than the
 * one held takes it over; the same step with the same token is the same claim again; anything else is
 * refused.
 */
const CLAIM = `
local held = redis.call('GET', KEYS[1])
local step = tonumber(ARGV[1])
if held then
  local sep = string.find(held, ':', 1, true)
  local held_step = tonumber(string.sub(held, 1, sep - 1))
  if held_step > step then return 0 end
  if held_step == step then
    if string.sub(held, sep + 1) == ARGV[2] then return 1 end
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'EX', ARGV[3])
return 1`;
