import { randomUUID } from "node:crypto";
import type { Server } from "node:http";
import { KubeConfig } from "@kubernetes/client-node";
import express, { type Request, type Response } from "express";
import { parse as parseYaml } from "yaml";

/**
 * A small double of the Kubernetes API server: the endpoints Slipway's adapter calls, with the
 * response shapes of the real API (APIResourceList for discovery, the object for apply/get, `<Kind>List`
 * for lists, `Status` objects for errors and deletes). It keeps objects in memory, records every
 * request, and lets a test script Deployment statuses (a rollout that finishes after N polls or gets
 * stuck) and inject apply failures (422 Invalid, 409 Conflict).
 */

interface ResourceInfo {
  readonly group: string; // "" for the core group
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

const RESOURCES: readonly ResourceInfo[] = [
  { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false },
  { group: "", version: "v1", plural: "resourcequotas", kind: "ResourceQuota", namespaced: true },
  { group: "", version: "v1", plural: "limitranges", kind: "LimitRange", namespaced: true },
  { group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true },
  { group: "", version: "v1", plural: "services", kind: "Service", namespaced: true },
  { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true },
  { group: "", version: "v1", plural: "events", kind: "Event", namespaced: true },
  { group: "apps", version: "v1", plural: "deployments", kind: "Deployment", namespaced: true },
  { group: "apps", version: "v1", plural: "replicasets", kind: "ReplicaSet", namespaced: true },
  { group: "batch", version: "v1", plural: "cronjobs", kind: "CronJob", namespaced: true },
  { group: "batch", version: "v1", plural: "jobs", kind: "Job", namespaced: true },
  { group: "networking.k8s.io", version: "v1", plural: "ingresses", kind: "Ingress", namespaced: true },
  {
    group: "networking.k8s.io",
    version: "v1",
    plural: "networkpolicies",
    kind: "NetworkPolicy",
    namespaced: true,
  },
  {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    plural: "rolebindings",
    kind: "RoleBinding",
    namespaced: true,
  },
];

export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    generation?: number;
    resourceVersion?: string;
    uid?: string;
    creationTimestamp?: string;
    managedFields?: unknown[];
    ownerReferences?: { uid: string; kind: string; name: string }[];
  };
  spec?: unknown;
  status?: unknown;
  [key: string]: unknown;
};

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly contentType: string | undefined;
  readonly authorization: string | undefined;
  readonly body: unknown;
}

/** An apply the double answers with an error instead of storing the object. */
export type ApplyFault =
  | { readonly kind: "invalid"; readonly field: string; readonly message: string }
  | { readonly kind: "conflict"; readonly manager: string; readonly field: string };

function apiVersionOf(r: ResourceInfo): string {
  return r.group ? `${r.group}/${r.version}` : r.version;
}

function statusBody(code: number, reason: string, message: string, details?: Record<string, unknown>) {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

/** Equality-based label selectors (`a=b,c=d`, also `a==b` and `a!=b`), as the adapter sends them. */
export function matchesLabels(
  labels: Record<string, string> | undefined,
  selector: string | undefined,
): boolean {
  if (!selector) return true;
  return selector.split(",").every((term) => {
    const neq = /^([^!=]+)!=(.*)$/.exec(term);
    if (neq) return labels?.[neq[1]!] !== neq[2];
    const eq = /^([^!=]+)==?(.*)$/.exec(term);
    if (eq) return labels?.[eq[1]!] === eq[2];
    return labels?.[term] !== undefined; // existence
  });
}

function fieldValue(o: KubeObject, path: string): unknown {
  return path
    .split(".")
    .reduce<unknown>(
      (v, k) => (v && typeof v === "object" ? (v as Record<string, unknown>)[k] : undefined),
      o,
    );
}

function matchesFields(o: KubeObject, selector: string | undefined): boolean {
  if (!selector) return true;
  return selector.split(",").every((term) => {
    const [path = "", value = ""] = term.split("=");
    const actual = fieldValue(o, path);
    return typeof actual === "string" ? actual === value : value === "";
  });
}

export interface KubeDouble {
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Objects currently stored, as the API would return them. */
  get(kind: string, namespace: string | undefined, name: string): KubeObject | undefined;
  /** Objects of `kind` currently stored, optionally in one namespace and with these labels. */
  list(kind: string, namespace?: string, labels?: Record<string, string>): KubeObject[];
  /** Puts an object in the store as if someone else had created it. */
  seed(object: KubeObject): KubeObject;
  /** Successive answers of GET …/deployments/<name>/status (the last one repeats). */
  scriptRollout(namespace: string, name: string, statuses: readonly unknown[]): void;
  /** Successive `status` answers of GET …/<kind>/<name>/status for any kind (e.g. a Job). */
  scriptStatus(kind: string, namespace: string, name: string, statuses: readonly unknown[]): void;
  /** The next applies of `kind`/`name` fail this way (a conflict clears once forced). */
  failApply(kind: string, name: string, fault: ApplyFault): void;
  /**
   * Plays the Job controller and the kubelet for Jobs created from now on: each new Job gets one pod
   * (labels of its template plus `job-name`, `batch.kubernetes.io/job-name` and `controller-uid`, an
   * owner reference to the Job), which goes through the states `script(job)` asks for. Without a
   * script (undefined), a Job gets no pod, as when the controller is slow or the quota refuses it.
   */
  runJobs(script: (job: KubeObject) => PodScript | undefined): void;
  /** Appends lines to a pod's container log (timestamped now), as a running container prints them. */
  printLog(namespace: string, pod: string, lines: readonly string[]): void;
  /** Ends a pod's container with `exitCode` (state `terminated`, phase Succeeded or Failed). */
  terminate(namespace: string, pod: string, exitCode: number): void;
  /** Deletes an object as the garbage collector or a TTL would (no request recorded). */
  drop(kind: string, namespace: string | undefined, name: string): void;
  /** Forgets injected faults and recorded requests (the stored objects stay). */
  reset(): void;
  close(): Promise<void>;
}

/** What the pod of a Job does in the double (see `runJobs`). */
export type PodScript =
  /** The container starts, prints `lines`, and exits with `exitCode` unless `hold` keeps it running. */
  | { readonly lines?: readonly string[]; readonly exitCode?: number; readonly hold?: boolean }
  /** The container never starts: it stays waiting with this reason (ImagePullBackOff), with a Warning event. */
  | { readonly waiting: { readonly reason: string; readonly message: string } };

interface LogEntry {
  /** RFC3339Nano, as the kubelet writes them (trailing zeros of the fraction dropped). */
  readonly ts: string;
  readonly text: string;
}

let clock = 0;
/** Strictly increasing timestamps with a nanosecond part, like a container runtime's. */
function nanoNow(): string {
  const ms = Math.max(Date.now(), clock + 1);
  clock = ms;
  const iso = new Date(ms).toISOString(); // …T14:10:13.123Z
  const frac = `${iso.slice(20, 23)}${String(Math.floor(Math.random() * 1e6)).padStart(6, "0")}`.replace(
    /0+$/,
    "",
  );
  return `${iso.slice(0, 19)}${frac ? `.${frac}` : ""}Z`;
}

function tsValue(ts: string): string {
  const m = /^(.{19})(?:\.(\d+))?Z$/.exec(ts);
  return m ? `${m[1]}.${(m[2] ?? "").padEnd(9, "0")}` : ts;
}

export async function startKubeDouble(): Promise<KubeDouble> {
  const store = new Map<string, KubeObject>();
  const requests: RecordedRequest[] = [];
  const rollouts = new Map<string, { statuses: readonly unknown[]; reads: number }>();
  const faults = new Map<string, ApplyFault>();
  let resourceVersion = 1000;
  let jobScript: ((job: KubeObject) => PodScript | undefined) | undefined;
  const podLogs = new Map<string, LogEntry[]>();
  /** Open `follow=true` log responses of a pod: written to as lines come, ended with the container. */
  const followers = new Map<string, Set<{ res: Response; timestamps: boolean }>>();
  const key = (kind: string, namespace: string | undefined, name: string) =>
    `${kind}/${namespace ?? ""}/${name}`;

  const app = express();
  app.use(express.text({ type: () => true, limit: "4mb" }));
  app.use((req, _res, next) => {
    const raw = typeof req.body === "string" && req.body.length ? req.body : undefined;
    let body: unknown = raw;
    if (raw) {
      try {
        body = parseYaml(raw) as unknown;
      } catch {
        body = raw;
      }
    }
    requests.push({
      method: req.method,
      path: req.path,
      query: Object.fromEntries(
        Object.entries(req.query).flatMap(([k, v]) => (typeof v === "string" ? [[k, v]] : [])),
      ),
      contentType: req.headers["content-type"],
      authorization: req.headers.authorization,
      body,
    });
    next();
  });

  const send = (res: Response, code: number, body: unknown) =>
    res.status(code).type("application/json").send(JSON.stringify(body));

  // Discovery, which client-node's KubernetesObjectApi uses to find a kind's plural and scope.
  const groupVersions = new Map<string, ResourceInfo[]>();
  for (const r of RESOURCES) {
    const gv = apiVersionOf(r);
    groupVersions.set(gv, [...(groupVersions.get(gv) ?? []), r]);
  }
  const discovery = (gv: string) => (_req: Request, res: Response) => {
    send(res, 200, {
      kind: "APIResourceList",
      apiVersion: "v1",
      groupVersion: gv,
      resources: (groupVersions.get(gv) ?? []).map((r) => ({
        name: r.plural,
        singularName: r.kind.toLowerCase(),
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: ["create", "delete", "get", "list", "patch", "update", "watch"],
      })),
    });
  };
  for (const gv of groupVersions.keys()) {
    app.get(gv.includes("/") ? `/apis/${gv}` : `/api/${gv}`, discovery(gv));
  }
  // What Slipway's cluster health probe asks first (adapters/kubernetes/cluster-health.ts).
  app.get("/version", (_req, res) => {
    send(res, 200, { major: "1", minor: "24", gitVersion: "v1.24.0-double", platform: "linux/amd64" });
  });

  /** Resolves `/api/v1/...` and `/apis/<group>/<version>/...` paths. */
  function route(
    req: Request,
  ):
    | { r: ResourceInfo; namespace: string | undefined; name: string | undefined; sub: string | undefined }
    | undefined {
    const parts = req.path.split("/").filter(Boolean);
    let group = "";
    let version: string;
    let rest: string[];
    if (parts[0] === "api") {
      version = parts[1] ?? "";
      rest = parts.slice(2);
    } else if (parts[0] === "apis") {
      group = parts[1] ?? "";
      version = parts[2] ?? "";
      rest = parts.slice(3);
    } else return undefined;
    let namespace: string | undefined;
    if (rest[0] === "namespaces" && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const r = RESOURCES.find((x) => x.group === group && x.version === version && x.plural === rest[0]);
    if (!r) return undefined;
    return { r, namespace, name: rest[1], sub: rest[2] };
  }

  function notFound(res: Response, r: ResourceInfo, name: string) {
    send(
      res,
      404,
      statusBody(404, "NotFound", `${r.plural}${r.group ? `.${r.group}` : ""} "${name}" not found`, {
        name,
        ...(r.group ? { group: r.group } : {}),
        kind: r.plural,
      }),
    );
  }

  function specOf(o: KubeObject): string {
    return JSON.stringify({ ...o, metadata: undefined, status: undefined });
  }

  app.patch(/.*/, (req, res) => {
    const at = route(req);
    if (!at?.name || at.sub)
      return void send(
        res,
        404,
        statusBody(404, "NotFound", "the server could not find the requested resource"),
      );
    const { r, namespace, name } = at;
    if (req.headers["content-type"] !== "application/apply-patch+yaml") {
      return void send(
        res,
        415,
        statusBody(
          415,
          "UnsupportedMediaType",
          `the body of the request was in an unknown format - accepted media types include: application/apply-patch+yaml`,
        ),
      );
    }
    const fieldManager = typeof req.query.fieldManager === "string" ? req.query.fieldManager : "";
    if (!fieldManager) {
      return void send(
        res,
        400,
        statusBody(
          400,
          "BadRequest",
          'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
        ),
      );
    }
    const body = requests[requests.length - 1]!.body as KubeObject;
    if (!body || typeof body !== "object" || body.kind !== r.kind || body.metadata?.name !== name) {
      return void send(
        res,
        400,
        statusBody(
          400,
          "BadRequest",
          `the name of the object (${body?.metadata?.name}) does not match the name on the URL (${name})`,
        ),
      );
    }
    const fault = faults.get(`${r.kind}/${name}`);
    if (fault?.kind === "invalid") {
      faults.delete(`${r.kind}/${name}`);
      return void send(
        res,
        422,
        statusBody(
          422,
          "Invalid",
          `${r.kind}${r.group ? `.${r.group}` : ""} "${name}" is invalid: ${fault.field}: ${fault.message}`,
          {
            name,
            ...(r.group ? { group: r.group } : {}),
            kind: r.kind,
            causes: [{ reason: "FieldValueInvalid", message: fault.message, field: fault.field }],
          },
        ),
      );
    }
    if (fault?.kind === "conflict") {
      if (req.query.force !== "true") {
        const message = `conflict with "${fault.manager}" using ${apiVersionOf(r)}`;
        return void send(
          res,
          409,
          statusBody(409, "Conflict", `Apply failed with 1 conflict: ${message}: ${fault.field}`, {
            causes: [{ type: "FieldManagerConflict", message, field: fault.field }],
          }),
        );
      }
      faults.delete(`${r.kind}/${name}`);
    }
    const k = key(r.kind, r.namespaced ? namespace : undefined, name);
    const old = store.get(k);
    const now = new Date().toISOString();
    const changed = !old || specOf(old) !== specOf(body);
    const stored: KubeObject = {
      ...body,
      metadata: {
        ...body.metadata,
        ...(r.namespaced ? { namespace } : {}),
        uid: old?.metadata.uid ?? randomUUID(),
        creationTimestamp: old?.metadata.creationTimestamp ?? now,
        resourceVersion: String(++resourceVersion),
        generation: (old?.metadata.generation ?? 0) + (changed ? 1 : 0),
        managedFields: [
          {
            manager: fieldManager,
            operation: "Apply",
            apiVersion: apiVersionOf(r),
            time: now,
            fieldsType: "FieldsV1",
            fieldsV1: {},
          },
        ],
      },
      ...(old?.status !== undefined ? { status: old.status } : {}),
    };
    store.set(k, stored);
    send(res, old ? 200 : 201, stored);
    if (!old && r.kind === "Job" && jobScript) {
      const script = jobScript(stored);
      if (script) setTimeout(() => startJobPod(stored, script), 5);
    }
  });

  const podKey = (namespace: string, pod: string) => key("Pod", namespace, pod);

  function containerStatus(pod: KubeObject): Record<string, unknown> | undefined {
    const statuses = (pod.status as { containerStatuses?: Record<string, unknown>[] } | undefined)
      ?.containerStatuses;
    return statuses?.[0];
  }

  function print(namespace: string, pod: string, lines: readonly string[]) {
    const entries = podLogs.get(podKey(namespace, pod)) ?? [];
    podLogs.set(podKey(namespace, pod), entries);
    for (const text of lines) {
      const e = { ts: nanoNow(), text };
      entries.push(e);
      for (const f of followers.get(podKey(namespace, pod)) ?? []) {
        f.res.write(`${f.timestamps ? `${e.ts} ` : ""}${e.text}\n`);
      }
    }
  }

  function endFollowers(namespace: string, pod: string) {
    for (const f of followers.get(podKey(namespace, pod)) ?? []) f.res.end();
    followers.delete(podKey(namespace, pod));
  }

  function setJobStatus(job: KubeObject, status: Record<string, unknown>) {
    const stored = store.get(key("Job", job.metadata.namespace, job.metadata.name));
    if (stored && stored.metadata.uid === job.metadata.uid) stored.status = status;
  }

  function terminate(namespace: string, pod: string, exitCode: number) {
    const o = store.get(podKey(namespace, pod));
    if (!o) return;
    const cs = containerStatus(o)!;
    const now = new Date().toISOString();
    const startedAt = (cs.state as { running?: { startedAt?: string } }).running?.startedAt ?? now;
    cs.state = {
      terminated: { exitCode, reason: exitCode === 0 ? "Completed" : "Error", startedAt, finishedAt: now },
    };
    cs.ready = false;
    cs.started = false;
    (o.status as Record<string, unknown>).phase = exitCode === 0 ? "Succeeded" : "Failed";
    endFollowers(namespace, pod);
    const owner = o.metadata.ownerReferences?.find((ref) => ref.kind === "Job");
    const job = owner ? store.get(key("Job", namespace, owner.name)) : undefined;
    if (job) {
      const type = exitCode === 0 ? "Complete" : "Failed";
      setJobStatus(job, {
        startTime: (job.status as { startTime?: string } | undefined)?.startTime ?? now,
        ...(exitCode === 0 ? { succeeded: 1, completionTime: now } : { failed: 1 }),
        conditions: [
          {
            type,
            status: "True",
            lastProbeTime: now,
            lastTransitionTime: now,
            ...(exitCode === 0
              ? {}
              : { reason: "BackoffLimitExceeded", message: "Job has reached the specified backoff limit" }),
          },
        ],
      });
    }
  }

  function startJobPod(job: KubeObject, script: PodScript) {
    if (!store.has(key("Job", job.metadata.namespace, job.metadata.name))) return;
    const namespace = job.metadata.namespace!;
    const template = (
      job.spec as {
        template: {
          metadata?: { labels?: Record<string, string> };
          spec: { containers: { name: string; image: string }[] };
        };
      }
    ).template;
    const container = template.spec.containers[0]!;
    const name = `${job.metadata.name.slice(0, 57)}-${randomUUID().slice(0, 5)}`;
    const now = new Date().toISOString();
    const pod: KubeObject = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name,
        namespace,
        labels: {
          ...template.metadata?.labels,
          "batch.kubernetes.io/controller-uid": job.metadata.uid!,
          "batch.kubernetes.io/job-name": job.metadata.name,
          "controller-uid": job.metadata.uid!,
          "job-name": job.metadata.name,
        },
        uid: randomUUID(),
        creationTimestamp: now,
        resourceVersion: String(++resourceVersion),
        ownerReferences: [{ uid: job.metadata.uid!, kind: "Job", name: job.metadata.name }],
      },
      spec: template.spec,
      status: {
        phase: "Pending",
        conditions: [{ type: "PodScheduled", status: "True", lastTransitionTime: now }],
        containerStatuses: [
          {
            name: container.name,
            image: container.image,
            imageID: "",
            ready: false,
            restartCount: 0,
            started: false,
            state: { waiting: { reason: "ContainerCreating" } },
          },
        ],
      },
    };
    store.set(podKey(namespace, name), pod);
    setJobStatus(job, { active: 1, startTime: now });
    setTimeout(() => {
      const o = store.get(podKey(namespace, name));
      if (!o) return;
      const cs = containerStatus(o)!;
      if ("waiting" in script) {
        cs.state = { waiting: { ...script.waiting } };
        const at = new Date().toISOString();
        store.set(key("Event", namespace, `${name}.1`), {
          apiVersion: "v1",
          kind: "Event",
          metadata: { name: `${name}.1`, namespace, uid: randomUUID(), creationTimestamp: at },
          involvedObject: { kind: "Pod", name, namespace, uid: o.metadata.uid },
          type: "Warning",
          reason: "Failed",
          message: `Failed to pull image "${container.image}": ${script.waiting.message}`,
          firstTimestamp: at,
          lastTimestamp: at,
          count: 1,
        });
        return;
      }
      cs.state = { running: { startedAt: new Date().toISOString() } };
      cs.ready = true;
      cs.started = true;
      (o.status as Record<string, unknown>).phase = "Running";
      // Printed over a few ticks, so a reader may come in the middle of the output.
      const lines = [...(script.lines ?? [])];
      const step = () => {
        if (!store.has(podKey(namespace, name))) return;
        print(namespace, name, lines.splice(0, 2));
        if (lines.length > 0) return void setTimeout(step, 5);
        if (!script.hold) terminate(namespace, name, script.exitCode ?? 0);
      };
      setTimeout(step, 5);
    }, 5);
  }

  app.get(/.*/, (req, res) => {
    const at = route(req);
    if (!at)
      return void send(
        res,
        404,
        statusBody(404, "NotFound", "the server could not find the requested resource"),
      );
    const { r, namespace, name, sub } = at;
    if (name) {
      const o = store.get(key(r.kind, r.namespaced ? namespace : undefined, name));
      if (sub === "log" && r.kind === "Pod") {
        if (!o) return void notFound(res, r, name);
        const entries = podLogs.get(podKey(namespace!, name));
        if (!entries) {
          const lines = (o.metadata.annotations?.["double/log"] ?? "").split("\n");
          const tail = Number(req.query.tailLines ?? lines.length);
          return void res.type("text/plain").send(lines.slice(-tail).join("\n"));
        }
        const cs = containerStatus(o);
        const waiting = (cs?.state as { waiting?: { reason?: string } } | undefined)?.waiting;
        if (waiting) {
          // What the API server answers while the container has not started (kubelet's message).
          return void send(
            res,
            400,
            statusBody(
              400,
              "BadRequest",
              `container "${String(cs?.name)}" in pod "${name}" is waiting to start: ${waiting.reason ?? "ContainerCreating"}`,
            ),
          );
        }
        const timestamps = req.query.timestamps === "true";
        const since = typeof req.query.sinceTime === "string" ? tsValue(req.query.sinceTime) : undefined;
        let shown = entries.filter((e) => !since || tsValue(e.ts) >= since);
        if (req.query.tailLines !== undefined) shown = shown.slice(-Number(req.query.tailLines));
        const body = shown.map((e) => `${timestamps ? `${e.ts} ` : ""}${e.text}\n`).join("");
        const running = (cs?.state as { running?: unknown } | undefined)?.running !== undefined;
        if (req.query.follow !== "true" || !running) return void res.type("text/plain").send(body);
        // follow=true: the response stays open and gets each new line until the container ends.
        res.status(200).type("text/plain");
        // The API server answers at once and streams; the client sees the 200 before any line.
        res.flushHeaders();
        res.write(body);
        const f = { res, timestamps };
        const set = followers.get(podKey(namespace!, name)) ?? new Set();
        set.add(f);
        followers.set(podKey(namespace!, name), set);
        res.on("close", () => set.delete(f));
        return;
      }
      if (!o) return void notFound(res, r, name);
      const script = sub === "status" ? rollouts.get(`${r.kind}/${namespace}/${name}`) : undefined;
      if (script) {
        const status = script.statuses[Math.min(script.reads, script.statuses.length - 1)];
        script.reads++;
        // A status is about the newest spec unless the script says otherwise.
        o.status =
          r.kind === "Deployment"
            ? { observedGeneration: o.metadata.generation, ...(status as object) }
            : status;
      }
      return void send(res, 200, o);
    }
    const labelSelector = typeof req.query.labelSelector === "string" ? req.query.labelSelector : undefined;
    const fieldSelector = typeof req.query.fieldSelector === "string" ? req.query.fieldSelector : undefined;
    const items = [...store.values()].filter(
      (o) =>
        o.kind === r.kind &&
        (!namespace || o.metadata.namespace === namespace) &&
        matchesLabels(o.metadata.labels, labelSelector) &&
        matchesFields(o, fieldSelector),
    );
    send(res, 200, {
      kind: `${r.kind}List`,
      apiVersion: apiVersionOf(r),
      metadata: { resourceVersion: String(resourceVersion) },
      items,
    });
  });

  // Creates (the applier makes a tool's Namespace and RoleBinding so) and access reviews, which the
  // double always allows: it has no RBAC (test/kubernetes-rbac.test.ts runs the real one).
  app.post(/.*/, (req, res) => {
    const body = requests[requests.length - 1]!.body as KubeObject;
    if (req.path === "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews") {
      return void send(res, 201, { ...body, status: { allowed: true } });
    }
    const at = route(req);
    if (!at || at.name || !body?.metadata?.name)
      return void send(
        res,
        404,
        statusBody(404, "NotFound", "the server could not find the requested resource"),
      );
    const { r, namespace } = at;
    const name = body.metadata.name;
    const k = key(r.kind, r.namespaced ? namespace : undefined, name);
    if (store.has(k)) {
      return void send(
        res,
        409,
        statusBody(
          409,
          "AlreadyExists",
          `${r.plural}${r.group ? `.${r.group}` : ""} "${name}" already exists`,
        ),
      );
    }
    const stored: KubeObject = {
      ...body,
      apiVersion: apiVersionOf(r),
      kind: r.kind,
      metadata: {
        ...body.metadata,
        ...(r.namespaced ? { namespace } : {}),
        uid: randomUUID(),
        creationTimestamp: new Date().toISOString(),
        resourceVersion: String(++resourceVersion),
        generation: 1,
      },
    };
    store.set(k, stored);
    send(res, 201, stored);
  });

  app.delete(/.*/, (req, res) => {
    const at = route(req);
    if (!at?.name)
      return void send(
        res,
        405,
        statusBody(
          405,
          "MethodNotAllowed",
          "the server does not allow this method on the requested resource",
        ),
      );
    const { r, namespace, name } = at;
    const k = key(r.kind, r.namespaced ? namespace : undefined, name);
    const gone = store.get(k);
    if (!gone) return void notFound(res, r, name);
    remove(gone, typeof req.query.propagationPolicy === "string" ? req.query.propagationPolicy : undefined);
    send(res, 200, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Success",
      details: { name, ...(r.group ? { group: r.group } : {}), kind: r.plural, uid: randomUUID() },
    });
  });

  /**
   * Deletes an object and, as the garbage collector does, its dependents (by owner reference) unless
   * they are orphaned. batch/v1 Jobs orphan their pods by default (a legacy default kept by the API);
   * `kubectl` and Slipway ask for `Background`.
   */
  function remove(o: KubeObject, propagationPolicy: string | undefined) {
    store.delete(key(o.kind, o.metadata.namespace, o.metadata.name));
    if (o.kind === "Pod" && o.metadata.namespace) endFollowers(o.metadata.namespace, o.metadata.name);
    const policy = propagationPolicy ?? (o.kind === "Job" ? "Orphan" : "Background");
    for (const d of [...store.values()]) {
      const refs = d.metadata.ownerReferences ?? [];
      if (!refs.some((ref) => ref.uid === o.metadata.uid)) continue;
      if (policy === "Orphan") d.metadata.ownerReferences = refs.filter((ref) => ref.uid !== o.metadata.uid);
      else remove(d, propagationPolicy);
    }
  }

  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  return {
    url,
    requests,
    get: (kind, namespace, name) => store.get(key(kind, namespace, name)),
    list: (kind, namespace, labels = {}) =>
      [...store.values()].filter(
        (o) =>
          o.kind === kind &&
          (!namespace || o.metadata.namespace === namespace) &&
          Object.entries(labels).every(([k, v]) => o.metadata.labels?.[k] === v),
      ),
    seed(object) {
      const stored: KubeObject = {
        ...object,
        metadata: {
          uid: randomUUID(),
          creationTimestamp: new Date().toISOString(),
          resourceVersion: String(++resourceVersion),
          generation: 1,
          ...object.metadata,
        },
      };
      store.set(key(object.kind, object.metadata.namespace, object.metadata.name), stored);
      return stored;
    },
    scriptRollout(namespace, name, statuses) {
      rollouts.set(`Deployment/${namespace}/${name}`, { statuses, reads: 0 });
    },
    scriptStatus(kind, namespace, name, statuses) {
      rollouts.set(`${kind}/${namespace}/${name}`, { statuses, reads: 0 });
    },
    runJobs(script) {
      jobScript = script;
    },
    printLog: print,
    terminate,
    drop(kind, namespace, name) {
      const o = store.get(key(kind, namespace, name));
      if (o) remove(o, "Background");
    },
    failApply(kind, name, fault) {
      faults.set(`${kind}/${name}`, fault);
    },
    reset() {
      faults.clear();
      requests.length = 0;
    },
    close: async () => {
      for (const set of followers.values()) for (const f of set) f.res.end();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A real client-node config pointing at the double (bearer token over HTTP), as a kubeconfig would. */
export function kubeConfigFor(url: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "double", server: url, skipTLSVerify: true }],
    users: [{ name: "slipway", token: "double-token" }],
    contexts: [{ name: "double", cluster: "double", user: "slipway" }],
    currentContext: "double",
  });
  return kc;
}
