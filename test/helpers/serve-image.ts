import { randomBytes } from "node:crypto";
import { podman } from "../../services/adapters/podman/podman.js";
import { freePort } from "../../services/platform/net.js";

/**
 * Pulls a pushed image by digest from a test registry, runs it, and returns its answer to GET
 * `requestPath` (an app whose `/` is not its page answers elsewhere: `/jq`, `/hello.txt`).
 */
export async function serveImage(
  repoRoot: string,
  registry: { readonly username: string; readonly password: string },
  image: string,
  digest: string,
  requestPath = "/",
): Promise<string> {
  const ref = `${image.replace(/:[^:/]+$/, "")}@${digest}`;
  const name = `slipway-test-serve-${randomBytes(3).toString("hex")}`;
  const port = await freePort();
  const opts = { repoRoot };
  await podman(
    ["pull", "--quiet", "--tls-verify=false", "--creds", `${registry.username}:${registry.password}`, ref],
    opts,
  );
  try {
    await podman(
      ["run", "-d", "--name", name, "--cap-drop=all", "-p", `127.0.0.1:${port}:8080`, "-e", "PORT=8080", ref],
      opts,
    );
    const deadline = Date.now() + 60_000;
    for (;;) {
      const res = await fetch(`http://127.0.0.1:${port}${requestPath}`).catch(() => undefined);
      if (res?.status === 200) return await res.text();
      if (Date.now() > deadline) throw new Error(`${ref} did not answer on port ${port}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await podman(["rm", "-f", "-t", "0", name], { ...opts, allowFailure: true });
    await podman(["rmi", "-f", ref], { ...opts, allowFailure: true });
  }
}
