import type { Redis } from "ioredis";
import type { CryptoBox } from "../../platform/crypto-box.js";
import type { EnvVar, EnvVarLimits, EnvVarStore, EnvVarWrite } from "../../ports/envvars.js";

const P = "slipway:envvars:";

/**
 * Checks the limits and writes in one step, so two writers cannot together pass the count or size
 * limit. KEYS: values hash, sizes hash. ARGV: name, sealed value, plain size, max count, max total.
 */
const SET_SCRIPT = `
local existed = redis.call('HEXISTS', KEYS[1], ARGV[1])
if existed == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return 'too_many' end
local total = tonumber(ARGV[3])
local sizes = redis.call('HGETALL', KEYS[2])
for i = 1, #sizes, 2 do
  if sizes[i] ~= ARGV[1] then total = total + tonumber(sizes[i + 1]) end
end
if total > tonumber(ARGV[5]) then return 'too_large' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
if existed == 1 then return 'updated' end
return 'created'
`;

/**
 * A Redis hash per tool (`slipway:envvars:<tool>`, field = name, value = CryptoBox seal), plus a hash of
 * plain sizes for the limit check. The seal's context is `envvar:<tool>:<name>`, so a sealed value
 * copied to another tool or name does not open there.
 */
export class RedisEnvVars implements EnvVarStore {
  constructor(
    private readonly redis: Redis,
    private readonly box: CryptoBox,
  ) {}

  async list(tool: string): Promise<EnvVar[]> {
    const all = await this.redis.hgetall(valuesKey(tool));
    return Object.keys(all)
      .sort()
      .map((name) => ({ name, value: this.box.open(all[name]!, context(tool, name)) }));
  }

  async get(tool: string, name: string): Promise<string | undefined> {
    const sealed = await this.redis.hget(valuesKey(tool), name);
    return sealed === null ? undefined : this.box.open(sealed, context(tool, name));
  }

  async set(tool: string, name: string, value: string, limits: EnvVarLimits): Promise<EnvVarWrite> {
    const size = Buffer.byteLength(name) + Buffer.byteLength(value);
    const result = await this.redis.eval(
      SET_SCRIPT,
      2,
      valuesKey(tool),
      sizesKey(tool),
      name,
      this.box.seal(value, context(tool, name)),
      String(size),
      String(limits.maxCount),
      String(limits.maxTotalBytes),
    );
    return result as EnvVarWrite;
  }

  async delete(tool: string, name: string): Promise<boolean> {
    const [removed] = (await this.redis
      .multi()
      .hdel(valuesKey(tool), name)
      .hdel(sizesKey(tool), name)
      .exec()) as [Error | null, number][];
    return removed?.[1] === 1;
  }
}

export function envVarsKey(tool: string): string {
  return valuesKey(tool);
}

function valuesKey(tool: string): string {
  return `${P}${tool}`;
}

function sizesKey(tool: string): string {
  return `${P}${tool}:sizes`;
}

function context(tool: string, name: string): string {
  return `envvar:${tool}:${name}`;
}
