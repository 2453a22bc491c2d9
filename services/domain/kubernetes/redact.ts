import type { KubernetesObject } from "./render.js";

export const REDACTED = "***";

/**
 * Copies of `objects` fit for review output: every Secret keeps its keys (so a review shows which
 * variables change) but each value in `data` and `stringData` becomes `***`. Other objects are
 * returned as they are; none of them carries values (pods take their env from the Secret).
 */
export function redactSecrets(objects: readonly KubernetesObject[]): KubernetesObject[] {
  return objects.map((o) => {
    if (o.kind !== "Secret") return o;
    const secret = o as KubernetesObject & {
      data?: Record<string, string>;
      stringData?: Record<string, string>;
    };
    const mask = (values: Record<string, string> | undefined) =>
      values ? Object.fromEntries(Object.keys(values).map((k) => [k, REDACTED])) : undefined;
    const { data, stringData, ...rest } = secret;
    const redacted: KubernetesObject = {
      ...rest,
      ...(data ? { data: mask(data) } : {}),
      ...(stringData ? { stringData: mask(stringData) } : {}),
    };
    return redacted;
  });
}
