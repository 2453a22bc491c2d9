import { Job } from "kubernetes-models/batch/v1/Job";
import { Secret } from "kubernetes-models/v1/Secret";
import { describe, expect, it } from "vitest";
import { InputError } from "../../platform/errors.js";
import { jobRunName, renderJobRun, type JobRunSpec } from "./job-run.js";

const spec: JobRunSpec = {
  tool: "mytool",
  job: "cleanup",
  runId: "01m8y4fach1bpdhs794b9t",
  image: `registry.example/tool-mytool/web@sha256:${"a".repeat(64)}`,
  command: "./cleanup.sh --all",
  env: { DB_PASSWORD: "s3cret", API_KEY: "k" },
  memoryMb: 256,
  releaseId: "01hrelease0000000000001",
  commit: "0123456789abcdef0123456789abcdef01234567",
  runner: "slipway-jobs-1234abcd",
};

/** Through JSON, as the API server gets them, into kubernetes-models' OpenAPI validation. */
const plain = (o: unknown) => JSON.parse(JSON.stringify(o)) as never;

describe("renderJobRun", () => {
  it("renders a Job and its env Secret that conform to the Kubernetes OpenAPI schema", () => {
    const { job, secret } = renderJobRun(spec);
    expect(() => new Job(plain(job)).validate()).not.toThrow();
    expect(() => new Secret(plain(secret)).validate()).not.toThrow();
    // The check notices a broken Job, so the line above can fail.
    expect(() => new Job(plain({ ...job, spec: { ...job.spec, backoffLimit: "0" } })).validate()).toThrow(
      /backoffLimit/,
    );
  });

  it("runs one attempt in the hardened pod, labelled with the job, the run and the runner", () => {
    const { job } = renderJobRun(spec);
    expect(job.metadata).toMatchObject({ name: `cleanup-${spec.runId}`, namespace: "tool-mytool" });
    expect(job.spec).toMatchObject({ backoffLimit: 0 });
    expect(job.spec?.activeDeadlineSeconds).toBeUndefined();
    const pod = job.spec!.template;
    expect(pod.metadata?.labels).toMatchObject({
      "app.kubernetes.io/managed-by": "slipway",
      "app.kubernetes.io/component": "job",
      "app.kubernetes.io/part-of": "mytool",
      "app.kubernetes.io/version": spec.releaseId,
      "slipway.dev/tool": "mytool",
      "slipway.dev/job": "cleanup",
      "slipway.dev/run": spec.runId,
      "slipway.dev/runner": spec.runner,
    });
    expect(job.metadata.labels).toEqual(pod.metadata?.labels);
    expect(pod.spec).toMatchObject({
      restartPolicy: "Never",
      automountServiceAccountToken: false,
      securityContext: { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
      volumes: [{ name: "tmp", emptyDir: {} }],
    });
    const container = pod.spec!.containers[0]!;
    expect(container.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      readOnlyRootFilesystem: true,
    });
    expect(container.resources?.limits).toMatchObject({ memory: "256Mi" });
    // The command goes in as one argument of the same resolver the local runner uses.
    expect(container.command?.slice(0, 2)).toEqual(["/bin/sh", "-c"]);
    expect(container.command?.at(-1)).toBe("./cleanup.sh --all");
  });

  it("keeps env values out of the Job: they are in the run's own Secret, which the pod reads", () => {
    const { job, secret } = renderJobRun(spec);
    expect(JSON.stringify(job)).not.toContain("s3cret");
    expect(JSON.stringify(job)).not.toContain(Buffer.from("s3cret").toString("base64"));
    expect(job.spec!.template.spec!.containers[0]!.envFrom).toEqual([
      { secretRef: { name: `cleanup-${spec.runId}-env`, optional: false } },
    ]);
    expect(secret?.metadata).toMatchObject({
      name: `cleanup-${spec.runId}-env`,
      labels: { "slipway.dev/run": spec.runId, "slipway.dev/runner": spec.runner },
    });
    expect(secret?.data).toEqual({
      API_KEY: Buffer.from("k").toString("base64"),
      DB_PASSWORD: Buffer.from("s3cret").toString("base64"),
    });
    const bare = renderJobRun({ ...spec, env: {} });
    expect(bare.secret).toBeUndefined();
    expect(bare.job.spec!.template.spec!.containers[0]!.envFrom).toBeUndefined();
  });

  it("bounds long names to 63 characters and rejects an image that is not pinned by digest", () => {
    const long = "a".repeat(52);
    const name = jobRunName(long, spec.runId);
    expect(name.length).toBeLessThanOrEqual(63);
    expect(name).not.toBe(jobRunName(long, "01m8y4fach1bpdhs794b9u"));
    const { job, secret } = renderJobRun({ ...spec, job: long });
    expect(() => new Job(plain(job)).validate()).not.toThrow();
    expect(secret!.metadata.name.length).toBeLessThanOrEqual(63);
    expect(() => renderJobRun({ ...spec, image: "registry.example/tool-mytool/web:latest" })).toThrow(
      InputError,
    );
  });
});
