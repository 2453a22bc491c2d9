import type { CoreV1Event, V1Deployment, V1Pod, V1ReplicaSet } from "@kubernetes/client-node";

const pods = (n: number) => `${n} ${n === 1 ? "pod" : "pods"}`;

/** Where a Deployment's rollout stands, read from its status the way `kubectl rollout status` does. */
export type RolloutState =
  | { readonly done: true; readonly detail: string }
  | { readonly done: false; readonly stuck: boolean; readonly detail: string };

/**
 * Done when the controller has seen the newest spec (observedGeneration ≥ generation) and every
 * wanted replica is updated and available, with no old replica left. Stuck when the Progressing
 * condition says ProgressDeadlineExceeded (the controller gave up after progressDeadlineSeconds).
 */
export function rolloutState(d: V1Deployment): RolloutState {
  const wanted = d.spec?.replicas ?? 1;
  const s = d.status ?? {};
  const generation = d.metadata?.generation ?? 0;
  if ((s.observedGeneration ?? 0) < generation) {
    return { done: false, stuck: false, detail: "waiting for the deployment controller to see the new spec" };
  }
  const progressing = s.conditions?.find((c) => c.type === "Progressing");
  if (progressing?.reason === "ProgressDeadlineExceeded") {
    return {
      done: false,
      stuck: true,
      detail: `progress deadline exceeded${progressing.message ? `: ${progressing.message.replace(/\.$/, "")}` : ""}`,
    };
  }
  const updated = s.updatedReplicas ?? 0;
  const total = s.replicas ?? 0;
  const available = s.availableReplicas ?? 0;
  if (updated < wanted) {
    return {
      done: false,
      stuck: false,
      detail: `${updated} of ${wanted} new ${wanted === 1 ? "pod" : "pods"} created`,
    };
  }
  if (total > updated) {
    return {
      done: false,
      stuck: false,
      detail: `${pods(total - updated)} of the previous revision still running`,
    };
  }
  if (available < wanted) {
    return {
      done: false,
      stuck: false,
      detail: `${available} of ${wanted} new ${wanted === 1 ? "pod" : "pods"} available`,
    };
  }
  return { done: true, detail: `${available} of ${wanted} ${wanted === 1 ? "pod" : "pods"} available` };
}

const REVISION = "deployment.kubernetes.io/revision";

/**
 * The ReplicaSet of the Deployment's newest revision: the one whose revision annotation equals the
 * Deployment's, else the highest revision, else the newest by creation time.
 */
export function newestReplicaSet(d: V1Deployment, sets: readonly V1ReplicaSet[]): V1ReplicaSet | undefined {
  const owned = sets.filter(
    (rs) =>
      !d.metadata?.uid ||
      !rs.metadata?.ownerReferences?.length ||
      rs.metadata.ownerReferences.some((o) => o.uid === d.metadata?.uid),
  );
  const revision = d.metadata?.annotations?.[REVISION];
  const exact = revision ? owned.find((rs) => rs.metadata?.annotations?.[REVISION] === revision) : undefined;
  if (exact) return exact;
  const rev = (rs: V1ReplicaSet) => Number(rs.metadata?.annotations?.[REVISION] ?? 0) || 0;
  const created = (rs: V1ReplicaSet) => new Date(rs.metadata?.creationTimestamp ?? 0).getTime();
  return [...owned].sort((a, b) => rev(b) - rev(a) || created(b) - created(a))[0];
}

function eventTime(e: CoreV1Event): number {
  const t = e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp;
  return t ? new Date(t).getTime() : 0;
}

/** Warning events, oldest first, so the newest (most telling) line ends the report. */
export function warningEvents(events: readonly CoreV1Event[]): CoreV1Event[] {
  return events.filter((e) => e.type === "Warning").sort((a, b) => eventTime(a) - eventTime(b));
}

/**
 * What a maintainer needs to see about pods that did not become ready: each container's state
 * (waiting reason and message, e.g. ImagePullBackOff; the last termination's exit code, e.g. after
 * CrashLoopBackOff) and the pods' Warning events, newest last.
 */
export function describePods(pods: readonly V1Pod[], events: readonly CoreV1Event[]): string[] {
  const lines: string[] = [];
  if (pods.length === 0) lines.push("no pod of the new revision exists (see the events below)");
  for (const pod of pods) {
    const name = pod.metadata?.name ?? "?";
    lines.push(`pod ${name}: ${pod.status?.phase ?? "Unknown"}`);
    const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
    for (const c of statuses) {
      const parts: string[] = [`ready=${c.ready}`, `restarts=${c.restartCount}`];
      const waiting = c.state?.waiting;
      if (waiting)
        parts.push(`waiting: ${waiting.reason ?? "?"}${waiting.message ? ` (${waiting.message})` : ""}`);
      const terminated = c.state?.terminated;
      if (terminated) {
        parts.push(`terminated: ${terminated.reason ?? "?"}, exit code ${terminated.exitCode}`);
      }
      const last = c.lastState?.terminated;
      if (last) {
        parts.push(
          `last exit: code ${last.exitCode}${last.reason ? ` (${last.reason})` : ""}${last.message ? `: ${last.message}` : ""}`,
        );
      }
      lines.push(`  container ${c.name}: ${parts.join("; ")}`);
    }
    if (statuses.length === 0) {
      const unscheduled = pod.status?.conditions?.find(
        (c) => c.type === "PodScheduled" && c.status === "False",
      );
      if (unscheduled)
        lines.push(`  not scheduled: ${unscheduled.reason ?? ""} ${unscheduled.message ?? ""}`.trimEnd());
    }
  }
  const warnings = warningEvents(events);
  if (warnings.length) {
    lines.push("events:");
    for (const e of warnings) {
      const count = e.count && e.count > 1 ? ` (x${e.count})` : "";
      lines.push(`  ${e.involvedObject.name ?? "?"}: ${e.reason ?? "?"}: ${e.message ?? ""}${count}`);
    }
  }
  return lines;
}

/** The Deployment's ReplicaFailure condition (its ReplicaSet could not create pods), when it stands. */
export function replicaFailure(d: V1Deployment): string | undefined {
  const c = d.status?.conditions?.find((x) => x.type === "ReplicaFailure" && x.status === "True");
  return c ? (c.message ?? c.reason ?? "ReplicaFailure") : undefined;
}

/**
 * What a refused pod creation means for a rollout:
 * - `transient`: the quota controller has not counted the namespace yet (a quota just applied, as on a
 *   tool's first release); the controller retries and succeeds.
 * - `quota`: the namespace's quota is used up; it may free up (a job's pod ends), so it fails only when
 *   it persists.
 * - `refused`: admission (LimitRange, Pod Security, a webhook) refuses the pod as it is; retrying cannot help.
 */
export function creationFailureKind(message: string): "transient" | "quota" | "refused" {
  if (/status unknown for quota/i.test(message)) return "transient";
  if (/exceeded quota/i.test(message)) return "quota";
  return "refused";
}

/** The server's words without the controllers' prefix (`Error creating: `). */
export function creationFailureText(message: string): string {
  return message.replace(/^Error creating: /, "");
}
