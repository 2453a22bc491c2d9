import { readFile } from "node:fs/promises";
import path from "node:path";
import { InputError, PipelineError } from "../../platform/errors.js";
import {
  CONFIG_FILE_NAMES,
  formatProblem,
  parseComponentsConfig,
  WEB_PORT,
  type Component,
  type ComponentsConfig,
  type ConfigDeployPolicy,
  type ConfigProblem,
} from "../config/index.js";
import type { DeployPolicy } from "../tools/tool.js";

/** The components config a commit carries, and which file it came from. */
export interface AppConfig {
  readonly file: string;
  readonly config: ComponentsConfig;
}

/**
 * Reads `slipway.yaml`, else `toolforge.yaml`, from a checked-out app. Undefined when neither exists (the
 * Procfile then decides, after the build). An invalid file fails with every problem as
 * `file:line:column: field: message`.
 */
export async function readAppConfig(appDir: string): Promise<AppConfig | undefined> {
  for (const file of CONFIG_FILE_NAMES) {
    let text: string;
    try {
      text = await readFile(path.join(appDir, file), "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw error;
    }
    let config: ComponentsConfig;
    try {
      config = parseComponentsConfig(text, file);
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      const problems = (error.details?.problems ?? []) as ConfigProblem[];
      const lines = problems.length > 0 ? problems.map(formatProblem) : [error.message];
      throw new PipelineError("build_failed", `invalid ${file}: ${lines.join("; ")}`, {
        details: { phase: "config", log_tail: lines },
      });
    }
    checkSupported(config, file);
    return { file, config };
  }
  return undefined;
}

/**
 * What Slipway cannot run yet fails the build up front rather than deploying half of what the file asks:
 * components built from another repository (one build per push builds this repository only), and a config
 * with no webservice.
 */
function checkSupported(config: ComponentsConfig, file: string): void {
  const problems: string[] = [];
  for (const c of Object.values(config.components)) {
    if (c.build.kind === "source" && c.build.repository !== undefined) {
      problems.push(
        `${file}: components.${c.name}.build.repository: building another repository (${c.build.repository}) is not supported by Slipway yet; build it from this repository or use reuse_from`,
      );
    }
  }
  if (!webComponent(config)) {
    problems.push(
      `${file}: components: no webservice: add a continuous component named "web" (or one with publish:) that listens on its port`,
    );
  }
  if (problems.length > 0) {
    throw new PipelineError("build_failed", problems.join("; "), {
      details: { phase: "config", log_tail: problems },
    });
  }
}

/** The component served at `<tool>.localhost`: `web`, else the first continuous one that is published. */
export function webComponent(config: ComponentsConfig): Component | undefined {
  const all = Object.values(config.components);
  return (
    all.find((c) => c.name === "web" && c.component_type === "continuous") ??
    all.find((c) => c.component_type === "continuous" && c.run.publish !== undefined)
  );
}

/** Where the web component listens inside its container (its PORT). */
export function webPort(config: ComponentsConfig | undefined): number {
  return (config && webComponent(config)?.run.port) ?? WEB_PORT;
}

/** The tool's stored policy, as webhooks read it, from the one in a config file. */
export function toolPolicy(deploy: ConfigDeployPolicy, from: string): DeployPolicy {
  return {
    branches: deploy.branches ?? [],
    tags: [...deploy.tags],
    no_branches: deploy.branches !== undefined && deploy.branches.length === 0 ? true : undefined,
    from,
  };
}

/** Whether two policies deploy the same refs (`from` aside). */
export function samePolicy(a: DeployPolicy, b: DeployPolicy): boolean {
  return (
    a.branches.join("\n") === b.branches.join("\n") &&
    a.tags.join("\n") === b.tags.join("\n") &&
    !!a.no_branches === !!b.no_branches
  );
}

const UNIT_MB: Record<string, number> = {
  Ki: 1 / 1024,
  Mi: 1,
  Gi: 1024,
  Ti: 1024 * 1024,
  k: 1000 / 1024 / 1024,
  M: (1000 * 1000) / 1024 / 1024,
  G: (1000 * 1000 * 1000) / 1024 / 1024,
  T: (1000 * 1000 * 1000 * 1000) / 1024 / 1024,
};

/** `512Mi` → 512, `1Gi` → 1024, `1G` → 954 (whole MiB, at least 6: podman's floor). */
export function memoryMb(quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)$/.exec(quantity);
  if (!m) throw new InputError(`"${quantity}" is not a memory quantity such as 256Mi or 1Gi`);
  return Math.max(6, Math.floor(Number(m[1]) * UNIT_MB[m[2]!]!));
}
