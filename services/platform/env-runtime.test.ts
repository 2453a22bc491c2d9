import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./env.js";

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
    });
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

  it("rejects an unknown runtime, naming the variable", () => {
    expect(() => loadConfig({ SLIPWAY_RUNTIME: "docker" }, "/repo")).toThrow(ConfigError);
    expect(() => loadConfig({ SLIPWAY_RUNTIME: "docker" }, "/repo")).toThrow(/SLIPWAY_RUNTIME/);
  });
});
