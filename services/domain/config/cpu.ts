import { InputError } from "../../platform/errors.js";

/**
 * A Kubernetes CPU quantity as Toolforge accepts it (`500m`, `0.5`, `1`, or a YAML number) in CPUs, as
 * podman's `--cpus` takes it: `500m` → 0.5, `2` → 2. Rounded to the millicore, Kubernetes' own precision.
 */
export function cpus(quantity: string | number): number {
  const text = String(quantity).trim();
  const m = /^(?:(\d+)m|(\d+(?:\.\d+)?))$/.exec(text);
  const value = m ? (m[1] !== undefined ? Number(m[1]) / 1000 : Number(m[2])) : Number.NaN;
  const rounded = Math.round(value * 1000) / 1000;
  if (!(rounded > 0)) {
    throw new InputError(`"${text.slice(0, 40)}" is not a CPU quantity such as "500m", "0.5" or "1"`, {
      details: { field: "cpu" },
    });
  }
  return rounded;
}
