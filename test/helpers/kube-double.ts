import { randomUUID } from "node:crypto";
import type { Server } from "node:http";
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
  /** Puts an object in the store as if someone else had created it. */
  seed(object: KubeObject): KubeObject;
  /** Successive answers of GET …/deployments/<name>/status (the last one repeats). */
  scriptRollout(namespace: string, name: string, statuses: readonly unknown[]): void;
  /** Successive `status` answers of GET …/<kind>/<name>/status for any kind (e.g. a Job). */
  scriptStatus(kind: string, namespace: string, name: string, statuses: readonly unknown[]): void;
  /** The next applies of `kind`/`name` fail this way (a conflict clears once forced). */
  failApply(kind: string, name: string, fault: ApplyFault): void;
  /** Forgets injected faults and recorded requests (the stored objects stay). */
  reset(): void;
  close(): Promise<void>;
}

export async function startKubeDouble(): Promise<KubeDouble> {
  const store = new Map<string, KubeObject>();
  const requests: RecordedRequest[] = [];
  const rollouts = new Map<string, { statuses: readonly unknown[]; reads: number }>();
  const faults = new Map<string, ApplyFault>();
  let resourceVersion = 1000;
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
  });

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
        const lines = (o.metadata.annotations?.["double/log"] ?? "").split("\n");
        const tail = Number(req.query.tailLines ?? lines.length);
        return void res.type("text/plain").send(lines.slice(-tail).join("\n"));
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
    if (!store.has(k)) return void notFound(res, r, name);
    store.delete(k);
    send(res, 200, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Success",
      details: { name, ...(r.group ? { group: r.group } : {}), kind: r.plural, uid: randomUUID() },
    });
  });

  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  return {
    url,
    requests,
    get: (kind, namespace, name) => store.get(key(kind, namespace, name)),
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
    failApply(kind, name, fault) {
      faults.set(`${kind}/${name}`, fault);
    },
    reset() {
      faults.clear();
      requests.length = 0;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
