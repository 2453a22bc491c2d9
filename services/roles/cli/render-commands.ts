import { Option, type Command } from "commander";
import { toApplyableYaml } from "../../domain/kubernetes/yaml.js";
import type { ApiClient } from "./client.js";

interface ManifestsView {
  tool: string;
  namespace: string;
  release_id: string;
  release_status: string;
  live: boolean;
  commit: string;
  config_source: "release" | "default";
  components: { name: string; kind: string }[];
  skipped: { component: string; reason: string }[];
  /** Absent from servers older than this client. */
  limit_problems?: string[];
  options: { domain: string; ingress_class_name: string };
  objects: object[];
}

/**
 * `slipway render <tool> [--component X] [--json|--yaml]`: the Kubernetes objects of the tool's live
 * (else newest) release, from GET /api/v1/tools/:tool/manifests. Default output is the YAML with a
 * comment header saying which release it is; `--yaml` is the YAML alone (for `kubectl diff -f -`);
 * `--json` is the API's answer. Secret values arrive as `***`, so the YAML leaves Secrets out (and
 * one-off Jobs, which would run if applied), each as a comment line: it diffs and applies as it is.
 * A config the namespace's limits would refuse is printed all the same, with each problem on stderr
 * and exit code 1.
 */
export function registerRenderCommands(program: Command, client: () => Promise<ApiClient>): void {
  program
    .command("render <tool>")
    .description("print the Kubernetes manifests of the tool's live (or newest) release, for review")
    .option("--component <name>", "only this component's objects")
    .addOption(new Option("--json", "print the API's JSON answer").conflicts("yaml"))
    .addOption(new Option("--yaml", "print only the YAML documents (no header)").conflicts("json"))
    .action(async (tool: string, o: { component?: string; json?: boolean; yaml?: boolean }) => {
      const query = o.component ? `?component=${encodeURIComponent(o.component)}` : "";
      const view = await (
        await client()
      ).request<ManifestsView>("GET", `/api/v1/tools/${encodeURIComponent(tool)}/manifests${query}`);
      // Stderr, so `--yaml | kubectl diff -f -` still gets the YAML; the exit code tells scripts.
      for (const p of view.limit_problems ?? []) {
        process.stderr.write(`slipway: the cluster would refuse this: ${p}\n`);
      }
      if (view.limit_problems?.length) process.exitCode = 1;
      if (o.json) {
        process.stdout.write(JSON.stringify(view, null, 2) + "\n");
        return;
      }
      if (o.yaml) {
        process.stdout.write(toApplyableYaml(view.objects));
        return;
      }
      const header = [
        `# ${view.tool}: release ${view.release_id} (${view.live ? "live" : view.release_status}), commit ${view.commit.slice(0, 12)}`,
        `# namespace ${view.namespace}; components: ${view.components.map((c) => `${c.name} (${c.kind})`).join(", ") || "none"}`,
        ...(view.config_source === "default"
          ? ["# no components config was recorded for this release: one web component (the default)"]
          : []),
        ...view.skipped.map((s) => `# skipped ${s.component}: ${s.reason}`),
        `# served at <tool>.${view.options.domain}, ingress class ${view.options.ingress_class_name}`,
      ];
      process.stdout.write(header.join("\n") + "\n" + toApplyableYaml(view.objects));
    });
}
