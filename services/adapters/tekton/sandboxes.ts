import { ApiException, KubernetesObjectApi, PatchStrategy, type KubeConfig } from "@kubernetes/client-node";
import type { KubernetesObject } from "@kubernetes/client-node";
import type { BuildSandboxes, SandboxFound } from "../../ports/sandbox.js";
import { FIELD_MANAGER } from "../kubernetes/applier.js";
import { BUILDER_LABEL, BUILD_LABEL, MANAGED_BY, credentialSecretName, runName } from "./pipeline-run.js";

const GONE_WAIT_MS = 60_000;

/**
 * A build's PipelineRun seen as its sandbox: what the build recovery finds and removes when the builder
 * that followed it died (docs/tekton.md, "A builder that dies"). Removing cancels the run, deletes it
 * (its TaskRuns and pods go first, through their owner references) and deletes the build's source
 * credential Secret, which the dead builder could no longer delete.
 */
export class TektonBuildSandboxes implements BuildSandboxes {
  private objects: KubernetesObjectApi | undefined;

  /** `kubeConfig` is read on first use: the builder role may never need it. */
  constructor(
    private readonly kubeConfig: () => KubeConfig,
    private readonly namespace: string,
  ) {}

  async list(): Promise<SandboxFound[]> {
    const selector = `${Object.entries(MANAGED_BY)
      .map(([k, v]) => `${k}=${v}`)
      .join(",")},${BUILD_LABEL}`;
    const runs = await this.api().list(
      "tekton.dev/v1",
      "PipelineRun",
      this.namespace,
      undefined,
      undefined,
      undefined,
      undefined,
      selector,
    );
    return runs.items.map((run) => ({
      buildId: run.metadata!.labels![BUILD_LABEL]!,
      builder: run.metadata?.labels?.[BUILDER_LABEL],
    }));
  }

  async remove(buildId: string, builder?: string): Promise<void> {
    const name = runName(buildId);
    const ref = {
      apiVersion: "tekton.dev/v1",
      kind: "PipelineRun",
      metadata: { name, namespace: this.namespace },
    };
    const run = await orNone(this.api().read(ref));
    if (!run) return await this.removeCredential(buildId);
    if (builder !== undefined && run.metadata?.labels?.[BUILDER_LABEL] !== builder) return;
    // Cancelled first, so Tekton stops the steps at once and reports it, even if the delete waits on a finalizer.
    await orNone(
      this.api().patch(
        { ...ref, spec: { status: "Cancelled" } } as KubernetesObject,
        undefined,
        undefined,
        FIELD_MANAGER,
        undefined,
        PatchStrategy.MergePatch,
      ),
    );
    // Foreground: the run is gone only once its TaskRuns and their pods are, so a re-run's TaskRuns and
    // pods (named after the run) cannot collide with this one's.
    await orNone(this.api().delete(ref, undefined, undefined, undefined, undefined, "Foreground"));
    await this.removeCredential(buildId);
    // A re-run of the build creates a run of the same name: it must find this one gone.
    const uid = run.metadata?.uid;
    for (const until = Date.now() + GONE_WAIT_MS; Date.now() < until;) {
      const still = await orNone(this.api().read(ref));
      if (!still || still.metadata?.uid !== uid) return;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  private async removeCredential(buildId: string): Promise<void> {
    await orNone(
      this.api().delete({
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: credentialSecretName(buildId), namespace: this.namespace },
      }),
    );
  }

  private api(): KubernetesObjectApi {
    this.objects ??= KubernetesObjectApi.makeApiClient(this.kubeConfig());
    return this.objects;
  }
}

/** The answer, or undefined when the object is not there (404): already gone is what removal wants. */
async function orNone<T>(request: Promise<T>): Promise<T | undefined> {
  try {
    return await request;
  } catch (error) {
    if (error instanceof ApiException && (error as ApiException<unknown>).code === 404) return undefined;
    throw error;
  }
}
