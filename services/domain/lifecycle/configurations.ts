import type { BuildpackDescriptor } from "./buildpack.js";

/** Build variables of the Paketo convention: buildpacks declare the ones they read in `buildpack.toml`. */
const BUILD_VARIABLE = /^BP_/;

/**
 * One warning line per `BP_*` variable of the build environment (project.toml's `[[build.env]]`, the
 * tool's variables) that no buildpack of the group declares in `[[metadata.configurations]]`: Paketo
 * apps carry such variables, and one this platform ignores would otherwise change nothing, silently.
 */
export function unusedBuildVariableWarnings(
  env: Readonly<Record<string, string>>,
  group: readonly Pick<BuildpackDescriptor, "configurations">[],
): string[] {
  const known = [...new Set(group.flatMap((bp) => bp.configurations.map((c) => c.name)))]
    .filter((name) => BUILD_VARIABLE.test(name))
    .sort();
  const knownText = known.length > 0 ? known.join(", ") : "none";
  return Object.keys(env)
    .filter((name) => BUILD_VARIABLE.test(name) && !known.includes(name))
    .sort()
    .map((name) => `warning: ${name} is not used by any buildpack here; known: ${knownText}`);
}
