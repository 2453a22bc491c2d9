import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { RegistryClient } from "../../services/adapters/registry/client.js";
import { RegistryServer } from "../../services/adapters/registry/server.js";

export interface TestRegistry {
  readonly url: string;
  /** `127.0.0.1:<port>` */
  readonly host: string;
  readonly username: string;
  readonly password: string;
  readonly dir: string;
  /** A client logged in as the registry's user. */
  client(): RegistryClient;
  stop(): Promise<void>;
}

/** A real docker-registry on a random port in a temp dir, removed by `stop()`. */
export async function startRegistry(): Promise<TestRegistry> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-registry-"));
  const server = await RegistryServer.start({ dir, port: "random" });
  return {
    url: server.url,
    host: server.host,
    username: server.username,
    password: server.password,
    dir,
    client: () =>
      RegistryClient.create({ url: server.url, username: server.username, password: server.password }),
    stop: async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
