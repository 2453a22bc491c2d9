import { ConfigError } from "../../platform/env.js";

/**
 * Implementations chosen by a setting's value (a runtime profile, a build backend), each loaded only
 * when chosen. An unknown name stops the start before anything runs, naming the known ones.
 */
export function registered<T>(
  what: string,
  setting: string,
  entries: Readonly<Record<string, () => Promise<T>>>,
): { readonly names: readonly string[]; load(name: string): Promise<T> } {
  const names = Object.keys(entries);
  return {
    names,
    async load(name) {
      const load = Object.hasOwn(entries, name) ? entries[name] : undefined;
      if (!load) throw new ConfigError(`no ${what} "${name}" (${setting}); known: ${names.join(", ")}`);
      return load();
    },
  };
}
