import { CoreV1Api, Log, type KubeConfig } from "@kubernetes/client-node";
import { LABELS, MANAGED_BY, namespaceName } from "../../domain/kubernetes/index.js";
import type { Logger } from "../../platform/logger.js";
import type { ProcessLogs } from "../../ports/process-logs.js";
import type { StateStore } from "../../ports/store.js";
import { LogCursor, LookLoop, followLog, type LogFollow } from "./log-stream.js";

export interface WebLogFollowerOptions {
  /** Between two looks at which web pods run; default 5 s. */
  readonly pollMs?: number | undefined;
}

interface Followed {
  readonly tool: string;
  readonly releaseId: string;
  readonly cursor: LogCursor;
  follow: LogFollow | undefined;
  /** Appends one batch after the other, so the kept output is in the order it came. */
  writing: Promise<void>;
  /** Seen in the last look; a pod that is gone is forgotten. */
  seen: boolean;
}

/**
 * The cluster's counterpart of the local web-log follower: keeps the output of each live release's
 * web pods in {@link ProcessLogs}, where `slipway webservice logs` reads it after the pods are gone
 * (a rollout, an eviction, a scale-down). Every `pollMs` it lists, per tool with a live route, the
 * running pods of that release's webservice (labels `app.kubernetes.io/component=webservice` and
 * `slipway.dev/release`), and follows each pod's container log. The lines of several replicas are
 * kept interleaved, in the order they arrive. After a restart of Slipway, following starts from when
 * the release's output was last kept.
 */
export class KubernetesWebLogFollower {
  private readonly core: CoreV1Api;
  private readonly log: Log;
  private readonly followed = new Map<string, Followed>();
  private readonly loop: LookLoop;

  constructor(
    kubeConfig: KubeConfig,
    private readonly deps: {
      readonly store: Pick<StateStore, "listTools" | "getRoute">;
      readonly logs: ProcessLogs;
      readonly logger: Logger;
      readonly options?: WebLogFollowerOptions | undefined;
    },
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.log = new Log(kubeConfig);
    this.loop = new LookLoop(
      () => this.look(),
      deps.options?.pollMs ?? 5000,
      (e) => deps.logger.warn({ err: e }, "could not look for web pods"),
    );
  }

  start(): void {
    this.loop.start();
  }

  /** Stops following (the pods keep running). */
  async close(): Promise<void> {
    await this.loop.stop();
    for (const f of this.followed.values()) f.follow?.stop();
    this.followed.clear();
  }

  /** One look: follows new web pods of live releases, resumes follows that ended, forgets gone pods. */
  async look(): Promise<void> {
    for (const f of this.followed.values()) f.seen = false;
    for (const tool of await this.deps.store.listTools()) {
      const route = await this.deps.store.getRoute(tool.name);
      if (!route) continue;
      const namespace = namespaceName(tool.name);
      const pods = await this.core
        .listNamespacedPod({
          namespace,
          labelSelector: [
            `${LABELS.managedBy}=${MANAGED_BY}`,
            `${LABELS.tool}=${tool.name}`,
            `${LABELS.component}=webservice`,
            `${LABELS.release}=${route.release_id}`,
          ].join(","),
        })
        .catch((error: unknown) => {
          this.deps.logger.warn({ tool: tool.name, err: error }, "could not list web pods");
          return { items: [] };
        });
      for (const pod of pods.items) {
        const name = pod.metadata?.name;
        const container = pod.spec?.containers[0]?.name;
        const state = pod.status?.containerStatuses?.find((c) => c.name === container)?.state;
        // Only a running container: one that has ended has been read to its end by the follow before.
        if (!name || !container || !state?.running) continue;
        const key = `${namespace}/${name}`;
        let f = this.followed.get(key);
        if (!f) {
          const since = await this.deps.logs.lastAppendAt(tool.name, route.release_id).catch(() => undefined);
          f = {
            tool: tool.name,
            releaseId: route.release_id,
            cursor: LogCursor.from(since),
            follow: undefined,
            writing: Promise.resolve(),
            seen: true,
          };
          this.followed.set(key, f);
        }
        f.seen = true;
        if (f.follow && !f.follow.ended) continue;
        const log = this.deps.logger.child({ tool: tool.name, releaseId: route.release_id, pod: name });
        const target = f;
        f.follow = followLog(
          this.log,
          namespace,
          name,
          container,
          f.cursor,
          (lines) => {
            target.writing = target.writing.then(() =>
              this.deps.logs
                .append(target.tool, target.releaseId, lines)
                .catch((e) => log.warn({ err: e }, "webservice output could not be kept")),
            );
          },
          log,
        );
      }
    }
    for (const [key, f] of this.followed) {
      if (f.seen) continue;
      f.follow?.stop();
      this.followed.delete(key);
    }
  }
}
