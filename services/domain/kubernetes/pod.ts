// Types only: erased at compile time, so the domain does not load the Kubernetes client.
import type {
  V1Container,
  V1PodSecurityContext,
  V1PodTemplateSpec,
  V1Probe,
  V1SecurityContext,
} from "@kubernetes/client-node";
import { RUN_AS_USER, type HealthCheck, type ToolWorkload, resources, workloadPort } from "./model.js";
import { ANNOTATIONS, envSecretName, workloadLabels } from "./names.js";
import { PULL_SECRET_NAME } from "./pull-secret.js";

/** Where Slipway's images keep the CNB launcher (see `domain/lifecycle/launch.ts`). */
export const LAUNCHER = "/cnb/lifecycle/launcher";
export const PORT_NAME = "http";
export const TMP_VOLUME = "tmp";
/** Upper bound of the writable `/tmp` (counted against the node's ephemeral storage). */
export const TMP_SIZE_LIMIT = "1Gi";

/** Probe timing, from Toolforge's jobs framework: up to 2 minutes to start, then checked every 10 s. */
export const PROBE_TIMING = {
  startup: { periodSeconds: 1, failureThreshold: 120, timeoutSeconds: 5 },
  liveness: { periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 5 },
  readiness: { periodSeconds: 5, failureThreshold: 3, timeoutSeconds: 5 },
} as const;

export function podSecurityContext(): V1PodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: RUN_AS_USER,
    runAsGroup: RUN_AS_USER,
    fsGroup: RUN_AS_USER,
    seccompProfile: { type: "RuntimeDefault" },
  };
}

export function containerSecurityContext(readOnlyRootFilesystem: boolean): V1SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    privileged: false,
    capabilities: { drop: ["ALL"] },
    readOnlyRootFilesystem,
    runAsNonRoot: true,
  };
}

export function commandOf(w: ToolWorkload): string[] {
  return "process" in w.command ? [`/cnb/process/${w.command.process}`] : [LAUNCHER, w.command.shell];
}

type ProbeAction = Pick<V1Probe, "httpGet" | "exec" | "tcpSocket">;

/** The check behind all three probes: the configured one, else TCP on the port, else none. */
function probeAction(check: HealthCheck | undefined, port: number | undefined): ProbeAction | undefined {
  if (check?.type === "http") return { httpGet: { path: check.path, port: PORT_NAME } };
  // Through the launcher, so the script sees the app's PATH and environment like the process does.
  if (check?.type === "script") return { exec: { command: [LAUNCHER, check.script] } };
  if (port !== undefined) return { tcpSocket: { port: PORT_NAME } };
  return undefined;
}

function probes(w: ToolWorkload): Pick<V1Container, "startupProbe" | "livenessProbe" | "readinessProbe"> {
  if (w.kind !== "continuous-webservice" && w.kind !== "continuous-worker") return {};
  const action = probeAction(w.healthCheck, workloadPort(w));
  if (!action) return {};
  return {
    startupProbe: { ...action, ...PROBE_TIMING.startup },
    livenessProbe: { ...action, ...PROBE_TIMING.liveness },
    // Only webservices take traffic; readiness is what keeps a new release out of the Service until it answers.
    ...(w.kind === "continuous-webservice"
      ? { readinessProbe: { ...action, ...PROBE_TIMING.readiness } }
      : {}),
  };
}

/** The pod every kind of workload runs: locked down, resource-bounded, env from the component's Secret. */
export function podTemplate(w: ToolWorkload, restartPolicy: "Always" | "Never"): V1PodTemplateSpec {
  const port = workloadPort(w);
  const readOnly = w.readOnlyRootFilesystem ?? true;
  const res = resources(w);
  const annotations: Record<string, string> = { [ANNOTATIONS.commit]: w.commit };
  const envNames = [...new Set(w.env?.names ?? [])].sort();
  if (envNames.length > 0) annotations[ANNOTATIONS.envNames] = envNames.join(",");
  if (envNames.length > 0 && w.env?.checksum) annotations[ANNOTATIONS.envChecksum] = w.env.checksum;

  const container: V1Container = {
    name: w.component,
    image: w.image,
    command: commandOf(w),
    ...(port !== undefined
      ? {
          ports: [{ name: PORT_NAME, containerPort: port, protocol: "TCP" }],
          env: [{ name: "PORT", value: String(port) }],
        }
      : {}),
    ...(envNames.length > 0
      ? { envFrom: [{ secretRef: { name: envSecretName(w.component), optional: false } }] }
      : {}),
    resources: { limits: { ...res.limits }, requests: { ...res.requests } },
    securityContext: containerSecurityContext(readOnly),
    volumeMounts: [{ name: TMP_VOLUME, mountPath: "/tmp" }],
    ...probes(w),
  };
  return {
    metadata: { labels: workloadLabels(w), annotations },
    spec: {
      restartPolicy,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      // The images are private (Harbor: the tool's own project); the deployer applies this Secret first.
      imagePullSecrets: [{ name: PULL_SECRET_NAME }],
      securityContext: podSecurityContext(),
      containers: [container],
      volumes: [{ name: TMP_VOLUME, emptyDir: { sizeLimit: TMP_SIZE_LIMIT } }],
    },
  };
}
