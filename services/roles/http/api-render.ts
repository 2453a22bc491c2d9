import { Router } from "express";
import { defaultConfigFromProcfile } from "../../domain/config/index.js";
import {
  LABELS,
  limitProblems,
  namespaceName,
  policyOf,
  REDACTED,
  redactSecrets,
  renderAll,
  renderEnvSecret,
  renderPullSecret,
  sortObjects,
  workloadsFromConfig,
  type RenderOptions,
} from "../../domain/kubernetes/index.js";
import { imageByDigest } from "../../domain/releases/deployer.js";
import type { Release } from "../../domain/releases/release.js";
import { validateToolName } from "../../domain/tools/tool.js";
import { NotFoundError } from "../../platform/errors.js";
import type { ToolService } from "../../domain/tools/tool-service.js";
import type { EnvVar } from "../../ports/envvars.js";
import type { StateStore } from "../../ports/store.js";
import { requireTool } from "./auth.js";

/** What the route needs of the API's dependencies (ApiDeps satisfies it; not imported, to keep api.ts → here one-way). */
export interface RenderDeps {
  readonly store: StateStore;
  readonly tools: ToolService;
  readonly urls: { readonly webUrl: (tool: string) => string };
  /** The tool's environment variables; their names (never values) show in the review. */
  readonly envvars?: { list(tool: string): Promise<readonly EnvVar[]> } | undefined;
  /** The registry host pods pull from; when set the review includes the `registry-pull` Secret. */
  readonly pullRegistry?: string | undefined;
}

/** The ingress class `slipway render` assumes when the cluster profile has not configured one. */
export const DEFAULT_INGRESS_CLASS = "nginx";

/**
 * Render options from what the API already knows: tools are served at `<tool>.<web domain>`, so the
 * domain is the web URL's host without the tool. The cluster profile passes its own options.
 */
export function renderOptionsFrom(urls: RenderDeps["urls"]): RenderOptions {
  const probe = "x";
  const host = new URL(urls.webUrl(probe)).hostname;
  return {
    domain: host.startsWith(`${probe}.`) ? host.slice(probe.length + 1) : host,
    ingressClassName: DEFAULT_INGRESS_CLASS,
  };
}

/**
 * `GET /api/v1/tools/:tool/manifests[?component=X]`: the Kubernetes objects the tool's live release
 * (or, with none live, its newest) runs as, for review: what the cluster profile would apply. Secret
 * values are never in the answer (`redactSecrets`). `limit_problems` lists what the namespace's limits
 * would refuse (each line says what to change); a deploy of this config fails on them.
 */
export function renderRouter(
  deps: RenderDeps,
  options: RenderOptions = renderOptionsFrom(deps.urls),
): Router {
  const r = Router();
  r.get("/api/v1/tools/:tool/manifests", async (req, res) => {
    const name = validateToolName(String(req.params.tool));
    requireTool(req, name);
    const tool = await deps.tools.get(name);
    const [releases, route] = await Promise.all([
      deps.store.listReleases(tool.name, 20),
      deps.store.getRoute(tool.name),
    ]);
    const live = releases.find((rel) => rel.id === route?.release_id);
    const release: Release | undefined =
      live ?? (route ? await deps.store.getRelease(route.release_id) : undefined) ?? releases[0];
    if (!release) {
      throw new NotFoundError(`tool "${tool.name}" has no release yet: push to it, then render again`);
    }
    // Releases made before Slipway kept configs run one web component, as the deployer runs them.
    const config = release.config ?? defaultConfigFromProcfile(["web"]);
    const { workloads, skipped } = workloadsFromConfig(
      tool.name,
      config,
      {
        id: release.id,
        commit: release.commit,
        image: imageByDigest(release),
        processes: release.processes,
      },
      { procfileDefault: release.config === undefined },
    );
    const component = typeof req.query.component === "string" ? req.query.component : undefined;
    if (component !== undefined && !Object.hasOwn(config.components, component)) {
      throw new NotFoundError(
        `release ${release.id} of "${tool.name}" has no component "${component}"; it has ${Object.keys(config.components).join(", ")}`,
      );
    }
    // Every component gets the tool's variables from its Secret, as the deployer gives them. The
    // review shows the names and `***`; the checksum annotation is left out because a hash of a short
    // value could be guessed.
    const vars = (await deps.envvars?.list(tool.name)) ?? [];
    const data = Object.fromEntries(vars.map((v) => [v.name, v.value]));
    const names = Object.keys(data).sort();
    const withEnv = names.length ? workloads.map((w) => ({ ...w, env: { names } })) : workloads;
    const secrets = names.length ? withEnv.map((w) => renderEnvSecret(tool.name, w.component, data)) : [];
    // The pull Secret is shown so the review matches what is applied, but rendered from placeholders:
    // the real credential never reaches the API role.
    if (deps.pullRegistry) {
      secrets.push(
        renderPullSecret(tool.name, { registry: deps.pullRegistry, username: REDACTED, password: REDACTED }),
      );
    }
    const all = sortObjects([...renderAll({ tool: tool.name, workloads: withEnv }, options), ...secrets]);
    // What the rendered namespace's LimitRange and ResourceQuota would refuse (the API role does not
    // read the cluster; the deployer also checks the live ones). The review still shows the objects.
    const problems = limitProblems(namespaceName(tool.name), all, policyOf(all));
    const objects =
      component === undefined ? all : all.filter((o) => o.metadata.labels?.[LABELS.workload] === component);
    res.json({
      tool: tool.name,
      namespace: namespaceName(tool.name),
      release_id: release.id,
      release_status: release.status,
      live: release.id === route?.release_id,
      commit: release.commit,
      config_source: release.config ? "release" : "default",
      components: workloads.map((w) => ({ name: w.component, kind: w.kind })),
      skipped,
      limit_problems: problems,
      options: { domain: options.domain, ingress_class_name: options.ingressClassName },
      objects: redactSecrets(objects),
    });
  });
  return r;
}
