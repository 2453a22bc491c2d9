/* eslint-disable @typescript-eslint/no-unsafe-member-access -- the tests read rendered objects as plain JSON, as the API server does */
import { CronJob } from "kubernetes-models/batch/v1/CronJob";
import { Job } from "kubernetes-models/batch/v1/Job";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { Ingress } from "kubernetes-models/networking.k8s.io/v1/Ingress";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { LimitRange } from "kubernetes-models/v1/LimitRange";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { ResourceQuota } from "kubernetes-models/v1/ResourceQuota";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";
import type { V1PodTemplateSpec } from "@kubernetes/client-node";
import { InputError } from "../../platform/errors.js";
import type {
  OneOffWorkload,
  RenderOptions,
  ScheduledWorkload,
  ToolWorkload,
  WebserviceWorkload,
  WorkerWorkload,
} from "./model.js";
import {
  type KubernetesObject,
  envChecksum,
  renderAll,
  renderEnvSecret,
  renderNamespace,
  renderWorkload,
} from "./render.js";
import { toYaml } from "./yaml.js";
import { defaultConfigFromProcfile, parseComponentsConfig } from "../config/index.js";
import { commandOf, workloadsFromConfig } from "./from-config.js";
import { REDACTED, redactSecrets } from "./redact.js";
import { PULL_SECRET_NAME, renderPullSecret } from "./pull-secret.js";

const DIGEST = `registry.example/tool-mytool/web@sha256:${"a".repeat(64)}`;
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const options: RenderOptions = { domain: "toolforge.example", ingressClassName: "nginx" };

const web: WebserviceWorkload = {
  kind: "continuous-webservice",
  tool: "mytool",
  component: "web",
  image: DIGEST,
  command: { process: "web" },
  releaseId: "01hrelease0000000000001",
  commit: COMMIT,
  healthCheck: { type: "http", path: "/healthz" },
  env: { names: ["DB_PASSWORD", "API_KEY"], checksum: "sha256:abc" },
};
const worker: WorkerWorkload = {
  kind: "continuous-worker",
  tool: "mytool",
  component: "bot",
  image: DIGEST,
  command: { shell: "python bot.py --forever" },
  releaseId: "01hrelease0000000000001",
  commit: COMMIT,
};
const cron: ScheduledWorkload = {
  kind: "scheduled",
  tool: "mytool",
  component: "nightly",
  image: DIGEST,
  command: { process: "nightly" },
  releaseId: "01hrelease0000000000001",
  commit: COMMIT,
  schedule: "@daily",
  retry: 2,
  timeout: 600,
};
const oneOff: OneOffWorkload = {
  kind: "one-off",
  tool: "mytool",
  component: "migrate",
  image: DIGEST,
  command: { shell: "./manage.py migrate" },
  releaseId: "01hrelease0000000000001",
  commit: COMMIT,
};
const all: ToolWorkload[] = [web, worker, cron, oneOff];

/** Validates an object against the official OpenAPI schema of its kind; throws when it does not conform. */
function validate(o: object & { kind: string }): void {
  const data = JSON.parse(JSON.stringify(o)) as never;
  switch (o.kind) {
    case "Namespace":
      return new Namespace(data).validate();
    case "ResourceQuota":
      return new ResourceQuota(data).validate();
    case "LimitRange":
      return new LimitRange(data).validate();
    case "Secret":
      return new Secret(data).validate();
    case "Service":
      return new Service(data).validate();
    case "Deployment":
      return new Deployment(data).validate();
    case "Ingress":
      return new Ingress(data).validate();
    case "NetworkPolicy":
      return new NetworkPolicy(data).validate();
    case "CronJob":
      return new CronJob(data).validate();
    case "Job":
      return new Job(data).validate();
    default:
      throw new Error(`no schema for ${o.kind}`);
  }
}

function byKind<K extends string>(
  objects: KubernetesObject[],
  kind: K,
): Extract<KubernetesObject, { kind: string }> {
  const found = objects.find((o) => o.kind === kind);
  if (!found) throw new Error(`no ${kind} in ${objects.map((o) => o.kind).join(", ")}`);
  return found;
}

// Narrow accessors: the union of rendered types is awkward to index in tests.
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const json = (o: unknown) => o as Json;

function podTemplateOf(o: KubernetesObject): V1PodTemplateSpec {
  const spec = json(o).spec as Json;
  if (o.kind === "CronJob") return (spec.jobTemplate as Json).spec.template as V1PodTemplateSpec;
  return spec.template as V1PodTemplateSpec;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

describe("every rendered object conforms to the Kubernetes OpenAPI schema", () => {
  const objects = [
    ...renderNamespace("mytool"),
    renderEnvSecret("mytool", "web", { DB_PASSWORD: "s3cret", API_KEY: "k" }),
    renderPullSecret("mytool", {
      registry: "harbor.example",
      username: "robot$tool-mytool+pull",
      password: "p",
    }),
    ...all.flatMap((w) => renderWorkload(w, options)),
    ...renderWorkload({ ...worker, component: "api", port: 8080 }, { ...options, tlsSecretName: "wildcard" }),
  ];

  it.each(objects.map((o) => [`${o.kind}/${o.metadata.name}`, o] as const))("%s", (_, o) => {
    expect(() => validate(o)).not.toThrow();
    expect(o.metadata.name).toMatch(DNS_LABEL);
    for (const [key, value] of Object.entries(o.metadata.labels ?? {})) {
      expect(value, key).toMatch(LABEL_VALUE);
      expect(value.length, key).toBeLessThanOrEqual(63);
    }
  });

  it("and the validation notices a broken object", () => {
    const deployment = json(structuredClone(byKind(renderWorkload(web, options), "Deployment")));
    deployment.spec.template.spec.containers[0].ports[0].containerPort = "eight thousand";
    expect(() => validate(deployment as KubernetesObject)).toThrow(/containerPort/);

    const cronJob = json(structuredClone(byKind(renderWorkload(cron, options), "CronJob")));
    cronJob.spec.jobTemplate.spec.backoffLimit = "twice";
    expect(() => validate(cronJob as KubernetesObject)).toThrow(/backoffLimit/);

    const ingress = json(structuredClone(byKind(renderWorkload(web, options), "Ingress")));
    delete ingress.spec.rules[0].http.paths[0].pathType;
    expect(() => validate(ingress as KubernetesObject)).toThrow(/pathType/);
  });
});

describe("pods are locked down", () => {
  it.each(all.map((w) => [w.kind, w] as const))("%s", (_, w) => {
    const workload = renderWorkload(w, options).find((o) =>
      ["Deployment", "CronJob", "Job"].includes(o.kind),
    )!;
    const pod = podTemplateOf(workload).spec!;
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.enableServiceLinks).toBe(false);
    expect(pod.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 1000,
      fsGroup: 1000,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(pod.containers).toHaveLength(1);
    const container = pod.containers[0]!;
    expect(container.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ["ALL"] },
      readOnlyRootFilesystem: true,
    });
    expect(container.image).toBe(DIGEST);
    expect(container.volumeMounts).toEqual([{ name: "tmp", mountPath: "/tmp" }]);
    expect(pod.volumes).toEqual([{ name: "tmp", emptyDir: { sizeLimit: "1Gi" } }]);
    expect(pod.restartPolicy).toBe(w.kind.startsWith("continuous") ? "Always" : "Never");
  });

  it("keeps the root filesystem writable when the component asks for it", () => {
    const pod = podTemplateOf(
      byKind(renderWorkload({ ...web, readOnlyRootFilesystem: false }, options), "Deployment"),
    );
    expect(pod.spec!.containers[0]!.securityContext!.readOnlyRootFilesystem).toBe(false);
    expect(pod.spec!.containers[0]!.securityContext!.capabilities).toEqual({ drop: ["ALL"] });
  });
});

describe("webservice", () => {
  const objects = renderWorkload(web, options);

  it("is a Deployment, a Service and an Ingress named after the component in tool-<tool>", () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toEqual([
      "Deployment/tool-mytool/web",
      "Service/tool-mytool/web",
      "Ingress/tool-mytool/web",
    ]);
  });

  it("runs the Procfile process with PORT, env from its Secret, and probes from the health check", () => {
    const container = podTemplateOf(byKind(objects, "Deployment")).spec!.containers[0]!;
    expect(container.command).toEqual(["/cnb/process/web"]);
    expect(container.env).toEqual([{ name: "PORT", value: "8000" }]);
    expect(container.ports).toEqual([{ name: "http", containerPort: 8000, protocol: "TCP" }]);
    expect(container.envFrom).toEqual([{ secretRef: { name: "web-env", optional: false } }]);
    const action = { httpGet: { path: "/healthz", port: "http" } };
    expect(container.startupProbe).toEqual({
      ...action,
      periodSeconds: 1,
      failureThreshold: 120,
      timeoutSeconds: 5,
    });
    expect(container.livenessProbe).toEqual({
      ...action,
      periodSeconds: 10,
      failureThreshold: 3,
      timeoutSeconds: 5,
    });
    expect(container.readinessProbe).toMatchObject(action);
    expect(container.resources).toEqual({
      limits: { cpu: "100m", memory: "512Mi" },
      requests: { cpu: "50m", memory: "256Mi" },
    });
  });

  it("names the env variables and their checksum in the pod template, so a change rolls the pods", () => {
    const annotations = podTemplateOf(byKind(objects, "Deployment")).metadata!.annotations!;
    expect(annotations["slipway.dev/env-names"]).toBe("API_KEY,DB_PASSWORD");
    expect(annotations["slipway.dev/env-checksum"]).toBe("sha256:abc");
    expect(annotations["slipway.dev/commit"]).toBe(COMMIT);
  });

  it("rolls with zero downtime even with one replica", () => {
    const spec = json(byKind(objects, "Deployment")).spec as Json;
    expect(spec.strategy).toEqual({
      type: "RollingUpdate",
      rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
    });
    expect(spec.progressDeadlineSeconds).toBe(600);
    expect(spec.replicas).toBe(1);
  });

  it("serves <tool>.<domain> at its publish path through the configured ingress class", () => {
    const ingress = json(
      byKind(renderWorkload({ ...web, publish: "/api" }, { ...options, tlsSecretName: "tls" }), "Ingress"),
    );
    expect(ingress.spec).toEqual({
      ingressClassName: "nginx",
      tls: [{ hosts: ["mytool.toolforge.example"], secretName: "tls" }],
      rules: [
        {
          host: "mytool.toolforge.example",
          http: {
            paths: [
              {
                path: "/api",
                pathType: "Prefix",
                backend: { service: { name: "web", port: { name: "http" } } },
              },
            ],
          },
        },
      ],
    });
    const service = json(byKind(objects, "Service"));
    expect(service.spec.ports).toEqual([{ name: "http", port: 8000, targetPort: "http", protocol: "TCP" }]);
    expect(service.spec.selector).toEqual({
      "slipway.dev/tool": "mytool",
      "slipway.dev/component": "web",
      "app.kubernetes.io/component": "webservice",
    });
  });

  it("falls back to a TCP check without a configured one, and runs scripts through the launcher", () => {
    const tcp = podTemplateOf(
      byKind(renderWorkload({ ...web, healthCheck: undefined }, options), "Deployment"),
    );
    expect(tcp.spec!.containers[0]!.readinessProbe).toMatchObject({ tcpSocket: { port: "http" } });
    const script = podTemplateOf(
      byKind(
        renderWorkload(
          { ...web, healthCheck: { type: "script", script: "curl -f localhost:8000" } },
          options,
        ),
        "Deployment",
      ),
    );
    expect(script.spec!.containers[0]!.livenessProbe).toMatchObject({
      exec: { command: ["/cnb/lifecycle/launcher", "curl -f localhost:8000"] },
    });
  });
});

describe("selectors", () => {
  it("stay the same across releases and commits while the pod labels follow the release", () => {
    const next: WebserviceWorkload = {
      ...web,
      releaseId: "01hrelease0000000000002",
      commit: "f".repeat(40),
      replicas: 3,
    };
    const a = renderWorkload(web, options);
    const b = renderWorkload(next, options);
    const selector = (objects: KubernetesObject[]) =>
      json(byKind(objects, "Deployment")).spec.selector as Json;
    expect(selector(a)).toEqual(selector(b));
    expect(json(byKind(a, "Service")).spec.selector).toEqual(json(byKind(b, "Service")).spec.selector);
    const values = JSON.stringify([selector(a), json(byKind(a, "Service")).spec.selector]);
    expect(values).not.toContain(web.releaseId);
    expect(values).not.toContain(COMMIT);

    const podLabels = podTemplateOf(byKind(b, "Deployment")).metadata!.labels!;
    expect(podLabels).toMatchObject({
      "app.kubernetes.io/name": "web",
      "app.kubernetes.io/instance": "mytool-web",
      "app.kubernetes.io/component": "webservice",
      "app.kubernetes.io/part-of": "mytool",
      "app.kubernetes.io/managed-by": "slipway",
      "app.kubernetes.io/version": "01hrelease0000000000002",
      "slipway.dev/tool": "mytool",
      "slipway.dev/release": "01hrelease0000000000002",
      "slipway.dev/commit": "f".repeat(40),
    });
    // The selector must match the pods it owns.
    expect(podLabels).toMatchObject(selector(b).matchLabels as Json);
  });

  it("stay the same when a worker becomes a webservice", () => {
    const asWorker = renderWorkload({ ...worker, component: "web" }, options);
    const asWeb = renderWorkload(web, options);
    expect(json(byKind(asWorker, "Deployment")).spec.selector).toEqual(
      json(byKind(asWeb, "Deployment")).spec.selector,
    );
  });
});

describe("continuous worker", () => {
  it("is a Deployment only, replaced (not doubled) when it has one replica, without probes", () => {
    const objects = renderWorkload(worker, options);
    expect(objects.map((o) => o.kind)).toEqual(["Deployment"]);
    const spec = json(objects[0]).spec as Json;
    expect(spec.strategy).toEqual({ type: "Recreate" });
    const container = podTemplateOf(objects[0]!).spec!.containers[0]!;
    expect(container.command).toEqual(["/cnb/lifecycle/launcher", "python bot.py --forever"]);
    expect(container.env).toBeUndefined();
    expect(container.envFrom).toBeUndefined();
    expect(container.startupProbe).toBeUndefined();
    expect(container.livenessProbe).toBeUndefined();
  });

  it("rolls without downtime with several replicas, and gets a Service and TCP probes with a port", () => {
    const objects = renderWorkload({ ...worker, replicas: 2, port: 9000 }, options);
    expect(objects.map((o) => o.kind)).toEqual(["Deployment", "Service"]);
    expect((json(objects[0]).spec as Json).strategy).toMatchObject({ rollingUpdate: { maxUnavailable: 0 } });
    const container = podTemplateOf(objects[0]!).spec!.containers[0]!;
    expect(container.livenessProbe).toMatchObject({ tcpSocket: { port: "http" } });
    expect(container.readinessProbe).toBeUndefined();
  });
});

describe("scheduled and one-off", () => {
  it("renders a CronJob with a spread schedule and Toolforge's run settings", () => {
    const [cronJob] = renderWorkload(cron, options);
    const o = json(cronJob);
    expect(o.metadata.annotations).toEqual({ "slipway.dev/schedule": "@daily" });
    expect(o.spec.schedule).toMatch(/^\d{1,2} \d{1,2} \* \* \*$/);
    expect(renderWorkload(cron, options)).toEqual(renderWorkload(cron, options));
    expect(o.spec).toMatchObject({
      concurrencyPolicy: "Forbid",
      startingDeadlineSeconds: 300,
      successfulJobsHistoryLimit: 1,
      failedJobsHistoryLimit: 1,
      jobTemplate: { spec: { backoffLimit: 2, activeDeadlineSeconds: 600, ttlSecondsAfterFinished: 3600 } },
    });
    expect(podTemplateOf(cronJob!).spec!.containers[0]!.command).toEqual(["/cnb/process/nightly"]);
  });

  it("renders a one-off Job named per release, without a deadline unless given", () => {
    const [job] = renderWorkload(oneOff, options);
    expect(job!.metadata.name).toBe("migrate-01hrelease0000000000001");
    expect(json(job).spec).toMatchObject({ backoffLimit: 0, ttlSecondsAfterFinished: 3600 });
    expect(json(job).spec.activeDeadlineSeconds).toBeUndefined();
  });

  it("rejects a bad schedule, retry or timeout naming the field", () => {
    expect(() => renderWorkload({ ...cron, schedule: "every day" }, options)).toThrow(
      /invalid schedule "every day"/,
    );
    expect(() => renderWorkload({ ...cron, retry: 6 }, options)).toThrow(
      /retry must be an integer from 0 to 5/,
    );
    expect(() => renderWorkload({ ...oneOff, timeout: 0 }, options)).toThrow(/timeout/);
  });
});

describe("resources", () => {
  const limitsOf = (w: ToolWorkload) =>
    podTemplateOf(renderWorkload(w, options).find((o) => o.kind !== "Service" && o.kind !== "Ingress")!).spec!
      .containers[0]!.resources;

  it("requests half of limits at or above the defaults, and the limit itself below them", () => {
    expect(limitsOf({ ...worker, cpu: "2", memory: "2Gi" })).toEqual({
      limits: { cpu: "2", memory: "2Gi" },
      requests: { cpu: "1000m", memory: "1Gi" },
    });
    expect(limitsOf({ ...worker, cpu: "50m", memory: "256Mi" })).toEqual({
      limits: { cpu: "50m", memory: "256Mi" },
      requests: { cpu: "50m", memory: "256Mi" },
    });
    expect(limitsOf({ ...worker, cpu: "0.75", memory: "1.5Gi" })).toEqual({
      limits: { cpu: "0.75", memory: "1.5Gi" },
      requests: { cpu: "375m", memory: "768Mi" },
    });
  });

  it("rejects quantities Kubernetes would not take", () => {
    expect(() => renderWorkload({ ...worker, memory: "lots" }, options)).toThrow(
      /memory must be a memory quantity/,
    );
    expect(() => renderWorkload({ ...worker, cpu: "1 core" }, options)).toThrow(/cpu must be a CPU quantity/);
    expect(() => renderWorkload({ ...worker, memory: "0Mi" }, options)).toThrow(InputError);
  });
});

describe("input validation", () => {
  it.each([
    [
      "an image by tag",
      { ...web, image: "registry.example/tool-mytool/web:latest" },
      /must be pinned by digest/,
    ],
    ["a privileged port", { ...web, port: 80 }, /port must be an integer from 1024 to 65535/],
    [
      "an http check without a port",
      { ...worker, healthCheck: { type: "http", path: "/" } },
      /health_check_http needs a port/,
    ],
    ["a component name with a capital", { ...web, component: "Web" }, /invalid component name/],
    ["a component name starting with a digit", { ...web, component: "1web" }, /invalid component name/],
    ["a bad tool name", { ...web, tool: "My_Tool" }, /invalid tool name/],
    ["PORT from the Secret", { ...web, env: { names: ["PORT"] } }, /PORT is set by Slipway/],
    ["a publish path that is not a path", { ...web, publish: "api" }, /publish must be an absolute URL path/],
    ["zero replicas", { ...web, replicas: 0 }, /replicas must be an integer of at least 1/],
  ] as const)("rejects %s", (_, w, message) => {
    expect(() => renderWorkload(w as ToolWorkload, options)).toThrow(InputError);
    expect(() => renderWorkload(w as ToolWorkload, options)).toThrow(message);
  });

  it("rejects a domain that is not a DNS name", () => {
    expect(() => renderWorkload(web, { ...options, domain: "https://x" })).toThrow(/invalid domain/);
  });
});

describe("long names", () => {
  const tool = "t".repeat(52);
  const component = `c${"o".repeat(61)}x`; // 63 characters
  const long: ToolWorkload[] = [
    { ...web, tool, component },
    { ...cron, tool, component: `${component.slice(0, 60)}cro` },
    { ...oneOff, tool, component: `${component.slice(0, 60)}one` },
  ];

  it("are shortened to 63 characters (52 for CronJobs) with a hash, and stay valid", () => {
    const objects = renderAll({ tool, workloads: long }, options);
    for (const o of objects) {
      expect(o.metadata.name).toMatch(DNS_LABEL);
      expect(o.metadata.name.length).toBeLessThanOrEqual(o.kind === "CronJob" ? 52 : 63);
      expect(() => validate(o)).not.toThrow();
      for (const value of Object.values(o.metadata.labels ?? {}))
        expect(value.length).toBeLessThanOrEqual(63);
    }
    const cronJob = objects.find((o) => o.kind === "CronJob")!;
    expect(cronJob.metadata.name).toHaveLength(52);
    expect(cronJob.metadata.name).toMatch(/-[0-9a-f]{8}$/);
    const instance = objects.find((o) => o.kind === "Deployment")!.metadata.labels![
      "app.kubernetes.io/instance"
    ]!;
    expect(instance).toHaveLength(63);
    expect(renderEnvSecret(tool, component, { A_B: "x" }).metadata.name).toMatch(/^c[o]+-[0-9a-f]{8}$/);
    // And deterministically so, or every render would look like a change.
    expect(renderAll({ tool, workloads: long }, options)).toEqual(objects);
  });

  it("keeps the Secret the pods read and the Secret rendered in step", () => {
    const pod = podTemplateOf(
      renderWorkload({ ...web, tool, component, env: { names: ["A_B"] } }, options)[0]!,
    );
    expect(pod.spec!.containers[0]!.envFrom![0]!.secretRef!.name).toBe(
      renderEnvSecret(tool, component, { A_B: "x" }).metadata.name,
    );
  });
});

describe("namespace", () => {
  it("is tool-<tool> with the restricted pod security standard, a quota and container limits", () => {
    const [ns, quota, limits] = renderNamespace("mytool", { pods: 4, limitsMemory: "2Gi" }).map(json);
    expect(ns!.metadata.name).toBe("tool-mytool");
    expect(ns!.metadata.labels).toMatchObject({
      "pod-security.kubernetes.io/enforce": "restricted",
      "slipway.dev/tool": "mytool",
    });
    expect(quota!.metadata.namespace).toBe("tool-mytool");
    expect(quota!.spec.hard).toMatchObject({
      pods: "4",
      "limits.memory": "2Gi",
      "requests.cpu": "2",
      "services.nodeports": "0",
      "services.loadbalancers": "0",
    });
    expect(limits!.spec.limits[0]).toMatchObject({
      type: "Container",
      default: { cpu: "100m", memory: "512Mi" },
      defaultRequest: { cpu: "50m", memory: "256Mi" },
    });
  });
});

describe("network policy", () => {
  /** A pod, as a NetworkPolicy sees it: its namespace's labels and its own. */
  interface Peer {
    readonly namespace: string;
    readonly namespaceLabels?: Record<string, string>;
    readonly labels?: Record<string, string>;
  }
  interface Selector {
    readonly matchLabels?: Record<string, string>;
  }
  interface Policy {
    readonly metadata: { readonly name: string; readonly namespace: string };
    readonly spec: {
      readonly podSelector: Selector;
      readonly policyTypes: string[];
      readonly ingress?: { readonly from?: { podSelector?: Selector; namespaceSelector?: Selector }[] }[];
    };
  }
  const matches = (selector: Selector | undefined, labels: Record<string, string> = {}) =>
    Object.entries(selector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  /**
   * Whether `policies` (all of one namespace) let `from` open a connection to a pod of that namespace:
   * the API's semantics for podSelector/namespaceSelector peers (no policy selecting the pod: allowed).
   */
  function admits(policies: Policy[], target: Peer, from: Peer): boolean {
    const selecting = policies.filter(
      (p) => p.spec.policyTypes.includes("Ingress") && matches(p.spec.podSelector, target.labels),
    );
    if (selecting.length === 0) return true;
    const nsLabels = { "kubernetes.io/metadata.name": from.namespace, ...from.namespaceLabels };
    return selecting.some((p) =>
      (p.spec.ingress ?? []).some((rule) =>
        (rule.from ?? []).some((peer) =>
          peer.namespaceSelector
            ? matches(peer.namespaceSelector, nsLabels) && matches(peer.podSelector, from.labels)
            : from.namespace === p.metadata.namespace && matches(peer.podSelector, from.labels),
        ),
      ),
    );
  }
  const policiesOf = (objects: KubernetesObject[]) =>
    objects.filter((o) => o.kind === "NetworkPolicy") as unknown as Policy[];
  const webPod: Peer = { namespace: "tool-mytool", labels: { "slipway.dev/component": "web" } };

  it("admits connections to a tool's pods from its own pods and the ingress controller, not from other tools", () => {
    const policies = policiesOf(renderAll({ tool: "mytool", workloads: [web, worker] }, options));
    expect(policies).toHaveLength(1);
    expect(() => validate(policies[0] as KubernetesObject)).not.toThrow();
    expect(policies[0]!.metadata).toMatchObject({ name: "tool-isolation", namespace: "tool-mytool" });
    expect(
      admits(policies, webPod, { namespace: "tool-mytool", labels: { "slipway.dev/component": "bot" } }),
    ).toBe(true);
    expect(admits(policies, webPod, { namespace: "ingress-nginx", labels: { app: "controller" } })).toBe(
      true,
    );
    expect(
      admits(policies, webPod, { namespace: "tool-other", labels: { "slipway.dev/component": "web" } }),
    ).toBe(false);
    // A tool cannot pass for the controller by labelling its pods, nor its namespace (tools do not own it).
    expect(
      admits(policies, webPod, {
        namespace: "tool-other",
        labels: { "app.kubernetes.io/name": "ingress-nginx" },
      }),
    ).toBe(false);
    expect(admits(policies, webPod, { namespace: "default" })).toBe(false);
  });

  it("admits the ingress controller's namespace the operator names instead, and rejects an invalid name", () => {
    const policies = policiesOf(
      renderAll({ tool: "mytool", workloads: [web] }, { ...options, ingressNamespace: "traefik" }),
    );
    expect(admits(policies, webPod, { namespace: "traefik" })).toBe(true);
    expect(admits(policies, webPod, { namespace: "ingress-nginx" })).toBe(false);
    expect(policiesOf(renderNamespace("mytool", {}, { ingressNamespace: "traefik" }))).toEqual(policies);
    expect(() => renderNamespace("mytool", {}, { ingressNamespace: "Ingress_NGINX" })).toThrow(
      /invalid ingress controller namespace "Ingress_NGINX"/,
    );
    expect(() =>
      renderAll({ tool: "mytool", workloads: [web] }, { ...options, ingressNamespace: "-x" }),
    ).toThrow(InputError);
  });
});

describe("env Secret", () => {
  it("holds the values base64-encoded under sorted keys, with a checksum independent of key order", () => {
    const secret = renderEnvSecret("mytool", "web", { Z_LAST: "z", DB_PASSWORD: "s3cret ü" });
    expect(secret.metadata).toMatchObject({ name: "web-env", namespace: "tool-mytool" });
    expect(Object.keys(secret.data!)).toEqual(["DB_PASSWORD", "Z_LAST"]);
    expect(Buffer.from(secret.data!.DB_PASSWORD!, "base64").toString("utf8")).toBe("s3cret ü");
    expect(envChecksum({ A: "1", B: "2" })).toBe(envChecksum({ B: "2", A: "1" }));
    expect(envChecksum({ A: "1" })).not.toBe(envChecksum({ A: "2" }));
    expect(() => renderEnvSecret("mytool", "web", { "BAD-NAME": "x" })).toThrow(
      /invalid environment variable name/,
    );
  });
});

describe("registry pull Secret", () => {
  const PULL = { registry: "harbor.example:8443", username: "robot$tool-mytool+pull", password: "s3cret:pw" };

  it("is a dockerconfigjson Secret kubelet can log in to the registry with", () => {
    const secret = renderPullSecret("mytool", PULL);
    expect(secret.metadata).toMatchObject({ name: PULL_SECRET_NAME, namespace: "tool-mytool" });
    expect(secret.type).toBe("kubernetes.io/dockerconfigjson");
    const config = JSON.parse(Buffer.from(secret.data![".dockerconfigjson"]!, "base64").toString("utf8")) as {
      auths: Record<string, { username: string; password: string; auth: string }>;
    };
    const entry = config.auths["harbor.example:8443"]!;
    expect(entry).toMatchObject({ username: PULL.username, password: PULL.password });
    // kubelet reads `auth` (base64 user:password); a password containing ':' must survive the split.
    expect(Buffer.from(entry.auth, "base64").toString("utf8")).toBe(`${PULL.username}:${PULL.password}`);
    expect(Object.keys(config.auths)).toEqual(["harbor.example:8443"]);
  });

  it("is named by every pod template: Deployment, CronJob and Job", () => {
    const objects = all.flatMap((w) => renderWorkload(w, options));
    const withPods = objects.filter((o) => ["Deployment", "CronJob", "Job"].includes(o.kind));
    expect(new Set(withPods.map((o) => o.kind))).toEqual(new Set(["Deployment", "CronJob", "Job"]));
    for (const o of withPods) {
      expect(podTemplateOf(o).spec!.imagePullSecrets, o.kind).toEqual([{ name: PULL_SECRET_NAME }]);
    }
  });

  it("shows no credential once redacted", () => {
    const [out] = redactSecrets([renderPullSecret("mytool", PULL)]);
    expect(json(out).data).toEqual({ ".dockerconfigjson": REDACTED });
    const text = toYaml([out!]);
    expect(text).not.toContain("s3cret");
    expect(text).not.toContain(Buffer.from(`${PULL.username}:${PULL.password}`).toString("base64"));
  });
});

describe("renderAll and YAML", () => {
  it("is sorted and the same whatever order the components come in", () => {
    const objects = renderAll({ tool: "mytool", workloads: all }, options);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      "Namespace/tool-mytool",
      "ResourceQuota/tool-quota",
      "LimitRange/tool-limits",
      "NetworkPolicy/tool-isolation",
      "Service/web",
      "Deployment/bot",
      "Deployment/web",
      "CronJob/nightly",
      "Job/migrate-01hrelease0000000000001",
      "Ingress/web",
    ]);
    expect(renderAll({ tool: "mytool", workloads: [...all].reverse() }, options)).toEqual(objects);
  });

  it("rejects duplicate components, two webservices on one path and another tool's component", () => {
    expect(() => renderAll({ tool: "mytool", workloads: [web, web] }, options)).toThrow(/defined twice/);
    expect(() =>
      renderAll({ tool: "mytool", workloads: [web, { ...web, component: "web2" }] }, options),
    ).toThrow(/both publish \/ on mytool.toolforge.example/);
    expect(() => renderAll({ tool: "other", workloads: [web] }, options)).toThrow(/belongs to tool "mytool"/);
  });

  it("prints multi-document YAML that reads back to the same objects", () => {
    const objects = renderAll({ tool: "mytool", workloads: all }, options);
    const text = toYaml(objects);
    expect(text.startsWith("---\napiVersion: v1\nkind: Namespace\n")).toBe(true);
    const docs = parseAllDocuments(text);
    expect(Array.isArray(docs)).toBe(true);
    expect((docs as { toJS(): unknown }[]).map((d) => d.toJS())).toEqual(JSON.parse(JSON.stringify(objects)));
    expect(text).toMatch(/\n\s+- \/cnb\/lifecycle\/launcher\n\s+- python bot.py --forever\n/);
    expect(toYaml(objects)).toBe(text);
  });
});

describe("workloads from a release's components config", () => {
  const config = parseComponentsConfig(
    [
      "config_version: v1beta1",
      "components:",
      "  web:",
      "    component_type: continuous",
      "    run:",
      "      command: web",
      "      port: 8080",
      "      publish: /",
      "      replicas: 2",
      "      health_check_http: /healthz",
      "  bot:",
      "    run:",
      "      command: python3 bot.py --loop",
      "      memory: 1Gi",
      "  nightly:",
      "    run:",
      "      command: python3 cleanup.py",
      "      schedule: '@daily'",
      "      retry: 2",
      "      timeout: 600",
      "  migrate:",
      "    component_type: one-off",
      "    run:",
      "      command: release",
      "  other:",
      "    build:",
      "      repository: https://gitlab.example/other/repo.git",
      "    run:",
      "      command: serve",
      "",
    ].join("\n"),
    "slipway.yaml",
  );
  const release = {
    id: "01hrelease0000000000009",
    commit: COMMIT,
    image: DIGEST,
    processes: ["web", "release"],
  };
  const { workloads, skipped } = workloadsFromConfig("mytool", config, release, { procfileDefault: false });

  it("maps each component type to its workload and skips components this release did not build", () => {
    expect(workloads.map((w) => [w.component, w.kind])).toEqual([
      ["web", "continuous-webservice"],
      ["bot", "continuous-worker"],
      ["nightly", "scheduled"],
      ["migrate", "one-off"],
    ]);
    expect(skipped).toEqual([
      {
        component: "other",
        reason:
          "built from https://gitlab.example/other/repo.git, which release 01hrelease0000000000009 did not build",
      },
    ]);
    const objects = renderAll({ tool: "mytool", workloads }, options);
    for (const o of objects) expect(() => validate(o), `${o.kind}/${o.metadata.name}`).not.toThrow();
    const deployment = json(objects.find((o) => o.kind === "Deployment" && o.metadata.name === "web"));
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.template.spec.containers[0].image).toBe(DIGEST);
    expect(deployment.spec.template.spec.containers[0].command).toEqual(["/cnb/process/web"]);
    expect(deployment.spec.template.spec.containers[0].readinessProbe.httpGet.path).toBe("/healthz");
    const bot = json(objects.find((o) => o.kind === "Deployment" && o.metadata.name === "bot"));
    expect(bot.spec.template.spec.containers[0].command).toEqual([
      "/cnb/lifecycle/launcher",
      "python3 bot.py --loop",
    ]);
    expect(bot.spec.template.spec.containers[0].resources.limits.memory).toBe("1Gi");
    const cron = json(objects.find((o) => o.kind === "CronJob"));
    expect(cron.spec.jobTemplate.spec.backoffLimit).toBe(2);
    expect(cron.spec.jobTemplate.spec.activeDeadlineSeconds).toBe(600);
    const job = json(objects.find((o) => o.kind === "Job"));
    expect(job.spec.template.spec.containers[0].command).toEqual(["/cnb/process/release"]);
  });

  it("runs a one-word command as a process type only when the image has that type", () => {
    expect(commandOf("web", ["web", "worker"], false)).toEqual({ process: "web" });
    expect(commandOf("gunicorn", ["web"], false)).toEqual({ shell: "gunicorn" });
    expect(commandOf("web --debug", ["web"], true)).toEqual({ shell: "web --debug" });
    // Without the image's types, only a config derived from the Procfile names process types.
    expect(commandOf("worker", undefined, true)).toEqual({ process: "worker" });
    expect(commandOf("worker", undefined, false)).toEqual({ shell: "worker" });
  });

  it("gives a release without a recorded config one web webservice, as the deployer runs it", () => {
    const { workloads: ws } = workloadsFromConfig("mytool", defaultConfigFromProcfile(["web"]), release, {
      procfileDefault: true,
    });
    const objects = renderAll({ tool: "mytool", workloads: ws }, options);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      "Namespace/tool-mytool",
      "ResourceQuota/tool-quota",
      "LimitRange/tool-limits",
      "NetworkPolicy/tool-isolation",
      "Service/web",
      "Deployment/web",
      "Ingress/web",
    ]);
    for (const o of objects) expect(() => validate(o)).not.toThrow();
  });
});

describe("redactSecrets", () => {
  it("keeps a Secret's keys and hides every value, leaving other objects alone", () => {
    const secret = renderEnvSecret("mytool", "web", { DB_PASSWORD: "s3cret", API_KEY: "k" });
    const withStringData = {
      ...secret,
      metadata: { ...secret.metadata, name: "other" },
      stringData: { TOKEN: "plain" },
    };
    const deployment = renderWorkload(web, options)[0]!;
    const out = redactSecrets([secret, withStringData, deployment]);
    expect(json(out[0]).data).toEqual({ API_KEY: REDACTED, DB_PASSWORD: REDACTED });
    expect(json(out[1]).stringData).toEqual({ TOKEN: REDACTED });
    expect(out[2]).toBe(deployment);
    const text = toYaml(out);
    for (const value of ["s3cret", Buffer.from("s3cret").toString("base64"), "plain"])
      expect(text).not.toContain(value);
    expect(json(secret).data.DB_PASSWORD).toBe(Buffer.from("s3cret").toString("base64")); // input untouched
  });
});
