import { describe, expect, it } from "vitest";
import { loadConfig } from "./env.js";

describe("runtime profile config", () => {
  it("defaults to podman, with the Ingress on the web domain", () => {
    const config = loadConfig({ SLIPWAY_WEB_DOMAIN: "tools.example" }, "/repo");
    expect(config.runtime).toBe("podman");
    expect(config.kubernetes).toEqual({
      kubeconfig: undefined,
      ingressDomain: "tools.example",
      ingressClass: "nginx",
      tlsSecretName: undefined,
      rolloutTimeoutS: 660,
      jobStartTimeoutS: 300,
      retryMaxS: 30,

      subject: { kind: "ServiceAccount", namespace: "slipway", name: "slipway" },
    });
  });

  it("reads Slipway's own Kubernetes account, which each tool namespace's RoleBinding names", () => {
    const subject = (value: string) =>
      loadConfig({ SLIPWAY_KUBE_SUBJECT: value }, "/repo").kubernetes.subject;
    expect(subject("serviceaccount:platform:deployer")).toEqual({
      kind: "ServiceAccount",
      namespace: "platform",
      name: "deployer",
    });
    expect(subject("user:slipway")).toEqual({ kind: "User", name: "slipway" });
    expect(subject("group:slipway-admins")).toEqual({ kind: "Group", name: "slipway-admins" });
    for (const bad of ["slipway", "serviceaccount:slipway", "robot:x"]) {
      expect(() => subject(bad)).toThrow(
        /SLIPWAY_KUBE_SUBJECT: Slipway's own Kubernetes account, which each tool namespace's RoleBinding names: serviceaccount:<namespace>:<name>, user:<name> or group:<name>/,
      );
    }
  });

  it("reads the Kubernetes profile's settings", () => {
    const config = loadConfig(
      {
        SLIPWAY_RUNTIME: "kubernetes",
        SLIPWAY_KUBECONFIG: "/etc/slipway/kubeconfig",
        SLIPWAY_INGRESS_DOMAIN: "toolforge.example",
        SLIPWAY_INGRESS_CLASS: "traefik",
        SLIPWAY_INGRESS_TLS_SECRET: "wildcard-tls",
        SLIPWAY_INGRESS_NAMESPACE: "traefik",
        SLIPWAY_JOB_START_TIMEOUT_S: "120",
      },
      "/repo",
    );
    expect(config.runtime).toBe("kubernetes");
    expect(config.kubernetes).toMatchObject({
      kubeconfig: "/etc/slipway/kubeconfig",
      ingressDomain: "toolforge.example",
      ingressClass: "traefik",
      tlsSecretName: "wildcard-tls",
      ingressNamespace: "traefik",
      jobStartTimeoutS: 120,
      retryMaxS: 30,
    });
  });

  it("rejects an ingress controller namespace that is no namespace name, naming the variable", () => {
    expect(() => loadConfig({ SLIPWAY_INGRESS_NAMESPACE: "Ingress NGINX" }, "/repo")).toThrow(
      /SLIPWAY_INGRESS_NAMESPACE/,
    );
  });

  // The names are the profiles' (roles/server/profiles/index.ts): an unknown one stops `slipway server`.
  it("leaves the runtime's name to the registered profiles", () => {
    expect(loadConfig({ SLIPWAY_RUNTIME: "docker" }, "/repo").runtime).toBe("docker");
    expect(() => loadConfig({ SLIPWAY_RUNTIME: "" }, "/repo")).toThrow(/SLIPWAY_RUNTIME/);
  });
});
