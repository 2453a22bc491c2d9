import { randomBytes } from "node:crypto";
import { podman } from "../../services/adapters/podman/podman.js";
import type { LifecycleResult } from "../../services/domain/lifecycle/types.js";
import { freePort } from "../../services/platform/net.js";

/**
 * Starts a built app the way its image would run it — the run image, the layers at their image paths,
 * `/cnb/process/web`, non-root with no capabilities — waits until it answers, hands `use` a GET
 * function, and removes the container afterwards.
 */
export async function serveBuilt(
  options: {
    repoRoot: string;
    runImage: string;
    uid: number;
    gid: number;
    name: string;
    result: LifecycleResult;
  },
  use: (get: (p: string, init?: RequestInit) => Promise<Response>) => Promise<void>,
): Promise<void> {
  const { repoRoot, result } = options;
  const port = await freePort();
  const container = `slipway-test-run-${options.name}-${randomBytes(3).toString("hex")}`;
  const mounts = [
    `${result.appDir}:/workspace:ro`,
    `${result.cnbDir}:/cnb:ro`,
    ...result.layers.map((l) => `${l.hostDir}:${l.imagePath}:ro`),
  ].flatMap((m) => ["-v", m]);
  await podman(
    [
      "run",
      "-d",
      "--name",
      container,
      "--user",
      `${options.uid}:${options.gid}`,
      "--cap-drop",
      "all",
      "--security-opt",
      "no-new-privileges",
      "-p",
      `127.0.0.1:${port}:8080`,
      "-e",
      "PORT=8080",
      ...mounts,
      "--entrypoint",
      "/cnb/process/web",
      options.runImage,
    ],
    { repoRoot },
  );
  const get = (p: string, init?: RequestInit) =>
    fetch(`http://127.0.0.1:${port}${p}`, { redirect: "manual", ...init });
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await get("/");
        break;
      } catch (error) {
        if (Date.now() > deadline) {
          const logs = await podman(["logs", container], { repoRoot, allowFailure: true });
          throw new Error(`app did not answer: ${logs.stdout}${logs.stderr}`, { cause: error });
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    await use(get);
  } finally {
    await podman(["rm", "-f", "-t", "0", container], { repoRoot, allowFailure: true });
  }
}
