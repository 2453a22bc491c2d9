import { setTimeout as sleep } from "node:timers/promises";
import {
  ApiException,
  AuthorizationV1Api,
  NetworkingV1Api,
  VersionApi,
  type KubeConfig,
} from "@kubernetes/client-node";
import { errorMessage } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { ClusterHealthSource, ClusterHealthView } from "../../ports/cluster-health.js";

export interface ClusterHealthOptions {
  /** The Ingress class every tool's Ingress names (`SLIPWAY_INGRESS_CLASS`): checked once reachable. */
  readonly ingressClass: string;
  /** First retry after a failed probe; doubled after each failure up to `maxBackoffMs`. */
  readonly minBackoffMs?: number | undefined;
  readonly maxBackoffMs?: number | undefined;
  /** Between probes while the cluster answers: how soon an outage, or a fixed Ingress class, is seen. */
  readonly checkMs?: number | undefined;
  /** A probe that has not answered after this long counts as a failure (a black-holed address). */
  readonly probeTimeoutMs?: number | undefined;
}

const DEFAULTS = { minBackoffMs: 1000, maxBackoffMs: 30_000, checkMs: 30_000, probeTimeoutMs: 10_000 };

/**
 * Probes the cluster's API server (`GET /version`) in the background: while it cannot be reached,
 * again after 1 s, 2 s, 4 s … capped at `maxBackoffMs`; while it answers, every `checkMs`. Each probe
 * that reaches it also checks that the configured Ingress class exists. Changes are logged once each
 * (not per attempt), and `reachable()` lets the deployer start its cluster work once it can.
 */
export class ClusterHealth implements ClusterHealthSource {
  private readonly version: VersionApi;
  private readonly networking: NetworkingV1Api;
  private readonly authorization: AuthorizationV1Api;
  private readonly options: typeof DEFAULTS & { readonly ingressClass: string };
  private state: ClusterHealthView;
  private readonly stopped = new AbortController();
  private loop: Promise<void> | undefined;
  private onReachable: (() => void)[] = [];

  constructor(
    kubeConfig: KubeConfig,
    options: ClusterHealthOptions,
    private readonly logger: Logger,
  ) {
    this.version = kubeConfig.makeApiClient(VersionApi);
    this.networking = kubeConfig.makeApiClient(NetworkingV1Api);
    this.authorization = kubeConfig.makeApiClient(AuthorizationV1Api);
    this.options = {
      minBackoffMs: options.minBackoffMs ?? DEFAULTS.minBackoffMs,
      maxBackoffMs: options.maxBackoffMs ?? DEFAULTS.maxBackoffMs,
      checkMs: options.checkMs ?? DEFAULTS.checkMs,
      probeTimeoutMs: options.probeTimeoutMs ?? DEFAULTS.probeTimeoutMs,
      ingressClass: options.ingressClass,
    };
    this.state = {
      status: "unknown",
      server: kubeConfig.getCurrentCluster()?.server ?? null,
      reason: null,
      since: new Date().toISOString(),
      warnings: [],
    };
  }

  view(): ClusterHealthView {
    return this.state;
  }

  /** Starts probing; the first probe runs at once. */
  start(): void {
    this.loop ??= this.run();
  }

  /** Resolves once a probe reached the API server (at once when the last one did). */
  reachable(): Promise<void> {
    if (this.state.status === "available") return Promise.resolve();
    return new Promise((resolve) => this.onReachable.push(resolve));
  }

  async close(): Promise<void> {
    this.stopped.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped.signal.aborted) {
      const ok = await this.probe();
      failures = ok ? 0 : failures + 1;
      const wait = ok
        ? this.options.checkMs
        : Math.min(this.options.maxBackoffMs, this.options.minBackoffMs * 2 ** Math.min(failures - 1, 20));
      await sleep(wait, undefined, { signal: this.stopped.signal, ref: false }).catch(() => undefined);
    }
  }

  /** One probe; true when the API server answered. */
  private async probe(): Promise<boolean> {
    try {
      await this.withTimeout(this.version.getCode());
    } catch (error) {
      this.set("unavailable", describeFailure(error), this.state.warnings);
      return false;
    }
    const refused = await this.missingRights();
    if (refused !== undefined) {
      this.set("unavailable", refused, this.state.warnings);
      return false;
    }
    this.set("available", null, await this.ingressWarnings());
    return true;
  }

  /**
   * Why Slipway's account cannot deploy, or undefined when it can. A cluster that answers but where
   * Slipway may not create a tool's namespace (its role not installed yet, or a wrong subject) would
   * fail every deploy with 403, so until then deploys wait as they do for an unreachable cluster.
   */
  private async missingRights(): Promise<string | undefined> {
    try {
      const review = await this.withTimeout(
        this.authorization.createSelfSubjectAccessReview({
          body: { spec: { resourceAttributes: { verb: "create", resource: "namespaces" } } },
        }),
      );
      if (review.status?.allowed) return undefined;
      return "the API server answers, but Slipway's account may not create namespaces: apply infra/kubernetes/rbac (kubectl apply -k) and check that SLIPWAY_KUBE_SUBJECT names the account Slipway runs as";
    } catch (error) {
      return `cannot review Slipway's own rights (${describeFailure(error)})`;
    }
  }

  private async ingressWarnings(): Promise<string[]> {
    const name = this.options.ingressClass;
    try {
      await this.withTimeout(this.networking.readIngressClass({ name }));
      return [];
    } catch (error) {
      const code = error instanceof ApiException ? (error as ApiException<unknown>).code : undefined;
      if (code === 404) {
        const known = await this.withTimeout(this.networking.listIngressClass())
          .then((list) => list.items.map((c) => c.metadata?.name).filter((n): n is string => !!n))
          .catch(() => undefined);
        return [
          `Ingress class "${name}" does not exist in the cluster: set SLIPWAY_INGRESS_CLASS to ${
            known === undefined
              ? "one the cluster has"
              : known.length > 0
                ? `one of: ${known.join(", ")}`
                : "a class once one is installed (the cluster has none)"
          }; until then tools' Ingresses are served by no controller`,
        ];
      }
      return [
        `cannot check that Ingress class "${name}" exists (${describeFailure(error)}): Slipway needs get on ingressclasses.networking.k8s.io`,
      ];
    }
  }

  private set(status: "available" | "unavailable", reason: string | null, warnings: readonly string[]): void {
    const before = this.state;
    const changed = before.status !== status;
    this.state = {
      status,
      server: before.server,
      reason,
      since: changed ? new Date().toISOString() : before.since,
      warnings,
    };
    if (changed && status === "unavailable") {
      this.logger.warn(
        { server: before.server, reason, retryMaxS: this.options.maxBackoffMs / 1000 },
        "Kubernetes is unreachable; deploys and jobs wait, retrying with backoff",
      );
    } else if (changed) {
      this.logger.info({ server: before.server, previously: before.status }, "Kubernetes is reachable");
    }
    if (status === "available") {
      const added = warnings.filter((w) => !before.warnings.includes(w));
      for (const warning of added) this.logger.warn({ warning }, "Kubernetes setting needs attention");
      const resolved = before.warnings.filter((w) => !warnings.includes(w));
      for (const warning of resolved)
        this.logger.info({ warning }, "Kubernetes setting no longer needs attention");
      for (const resolve of this.onReachable.splice(0)) resolve();
    }
  }

  private withTimeout<T>(call: Promise<T>): Promise<T> {
    const ms = this.options.probeTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
    });
    return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
  }
}

/** What went wrong, in a line: the HTTP status the API server gave, or the connection error. */
function describeFailure(error: unknown): string {
  if (error instanceof ApiException) {
    const code = (error as ApiException<unknown>).code;
    if (code === 401) return "HTTP 401: the API server refused Slipway's credentials (check the kubeconfig)";
    if (code === 403) return "HTTP 403: forbidden";
    return `HTTP ${code}`;
  }
  return errorMessage(error);
}
