import type { Redis } from "ioredis";
import type { Build } from "../../domain/builds/build.js";
import type { Tool } from "../../domain/tools/tool.js";
import type { ToolTraces } from "../../domain/tools/tool-deletion.js";
import { RedisJobsStore } from "./redis-jobs.js";

const P = "slipway:";

/**
 * A tool's state in Redis: the tool record and its secrets' index, builds and their logs, releases,
 * route, environment variables, jobs and their runs, process logs, pull credential, GitLab link.
 * Every per-tool key Slipway writes is `slipway:<kind>:<tool>[:…]`, so those are found by their
 * third segment (a tool name holds no ':'), never by a substring: deleting "web" must not touch
 * "webshop". Per-build and per-release keys are found through the tool's own lists.
 */
export class RedisToolState implements ToolTraces {
  readonly what = "state (builds, releases, route, env vars, jobs, logs, tokens)";

  constructor(private readonly redis: Redis) {}

  async remove(tool: string, builds: readonly Build[]): Promise<void> {
    const record = await this.redis.get(`${P}tool:${tool}`);
    const releaseIds = await this.redis.zrange(`${P}tool:${tool}:releases`, 0, -1);
    const keys = new Set<string>();
    for (const b of builds) {
      keys.add(`${P}build:${b.id}`).add(`${P}log:${b.id}`).add(`${P}forge-status:${b.id}`);
    }
    for (const id of releaseIds) keys.add(`${P}release:${id}`);
    if (record) {
      const t = JSON.parse(record) as Tool;
      for (const hash of [t.token_hash, t.webhook_secret_hash, t.redeploy_token_hash]) {
        keys.add(`${P}secret:${hash}`);
      }
    }
    let cursor = "0";
    do {
      const [next, found] = await this.redis.scan(cursor, "MATCH", `${P}*`, "COUNT", 1000);
      cursor = next;
      for (const key of found) if (key.split(":")[2] === tool) keys.add(key);
    } while (cursor !== "0");
    // The tool record goes last: until then a failed deletion can be run again.
    keys.delete(`${P}tool:${tool}`);
    const all = [...keys];
    for (let i = 0; i < all.length; i += 500) await this.redis.del(...all.slice(i, i + 500));
    await this.redis
      .multi()
      .srem(`${P}jobtools`, tool)
      .zrem(`${P}tools`, tool)
      .del(`${P}tool:${tool}`)
      .exec();
    // Every process drops its cached route (front proxy) and tool (webhooks) at once.
    await this.redis.publish(`${P}routes`, tool);
    await this.redis.publish(`${P}tools`, tool);
  }
}

/**
 * What would start a tool's processes again: its route (the front proxy, the deployer's reconcile)
 * and its jobs (the job runner reads the continuous index and the schedule, not each tool's
 * definitions). Removed first, before the containers.
 */
export class RedisToolSwitches implements ToolTraces {
  readonly what = "route and job definitions";

  constructor(private readonly redis: Redis) {}

  async remove(tool: string): Promise<void> {
    await RedisJobsStore.create(this.redis).forgetTool(tool);
    await this.redis.del(`${P}route:${tool}`);
    await this.redis.publish(`${P}routes`, tool);
  }
}
