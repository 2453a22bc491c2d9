import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../services/roles/server/server.js";
import { git, gitRepo, pythonServer, viaProxy, waitFor } from "./helpers/apps.js";
import { buildIdFrom, clientOf, removeToolContainers, startLocalServer } from "./helpers/local-server.js";

/**
 * A push's outcome as its maintainer sees it: the build stays `deploying` until its release is live or
 * failed, `build logs -f` follows through the deploy and exits 1 unless the release went live, the log
 * ends on `===> DEPLOY FAILED: <reason>` with the failed process's output before it, and the reason
 * says what to change (listen on $PORT) and what serves now. Real Redis, registry, podman and git; the
 * CLI from dist/ (`npm run build` first).
 */
const TOOL = "outcome-app";
const HEALTH_S = 10;
/** A build of a small Python app on the shared 2-core machine, plus its deploy. */
const LONG = 900_000;

let server: RunningServer;
let port: number;
let home: string;
const client = clientOf(() => server);
const { api, request, buildDone } = client;
const cli = (args: string[]) => client.cli(args, { tool: TOOL });

interface BuildView {
  id: string;
  status: string;
  reason: string | null;
  phase: string | null;
  release_id: string | null;
  log_tail: string[];
}

/** Says what it does, then listens on 8080 whatever $PORT says: the usual first-deploy mistake. */
const WRONG_PORT_PY = `import http.server, os
print(f"starting; PORT is {os.environ['PORT']} but this app listens on 8080", flush=True)
print("listening on 0.0.0.0:8080", flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "5")
        self.end_headers()
        self.wfile.write(b"wrong")
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
`;

const RIGHT_PY = pythonServer(`(200, b"right")`);

let repo: Awaited<ReturnType<typeof gitRepo>>;
let pushUrl: string;

/** Pushes and follows the build's log with the real CLI, as a maintainer does right after a push. */
async function pushAndFollow(): Promise<{ id: string; code: number | null; stdout: string }> {
  const id = buildIdFrom(await git(repo.dir, ["push", pushUrl, "main"]));
  const followed = await cli(["build", "logs", id, "-f"]);
  return { id, code: followed.code, stdout: followed.stdout };
}

async function logLines(id: string): Promise<string[]> {
  return (await api<{ lines: string[] }>(`/api/v1/builds/${id}/logs`)).lines;
}

beforeAll(async () => {
  ({ server, port, home } = await startLocalServer({
    name: "outcome",
    env: { SLIPWAY_HEALTH_TIMEOUT_S: String(HEALTH_S) },
  }));
  const tool = await api<{ git_url: string; token: string }>("/api/v1/tools", {
    method: "POST",
    body: JSON.stringify({ name: TOOL }),
  });
  pushUrl = tool.git_url.replace("http://", `http://user:${tool.token}@`);
}, 1_200_000);

afterAll(async () => {
  await server?.close();
  await removeToolContainers(TOOL);
  if (home) await rm(home, { recursive: true, force: true });
});

describe("the outcome of a push", () => {
  const portMessage = `nothing listened on port 8000 within ${HEALTH_S} s: the web process must listen on $PORT (8000) on 0.0.0.0`;

  it(
    "a first release that never listens on $PORT fails the build in phase deploy, and says so everywhere",
    async () => {
      repo = await gitRepo({ "app.py": WRONG_PORT_PY, Procfile: "web: python3 app.py\n" });
      const pushed = git(repo.dir, ["push", pushUrl, "main"]);
      const id = buildIdFrom(await pushed);

      // While it deploys the build is `deploying`, and a deploy cannot be cancelled halfway.
      const deploying = await waitFor(
        "build deploying",
        async () => {
          const b = await api<BuildView>(`/api/v1/builds/${id}`);
          return b.status === "deploying" || b.status === "failure" || b.status === "success" ? b : undefined;
        },
        600_000,
        200,
      );
      expect(deploying.status, JSON.stringify(deploying)).toBe("deploying");
      const cancel = await request<{ error: { message: string } }>(`/api/v1/builds/${id}/cancel`, {
        method: "POST",
      });
      expect(cancel.status).toBe(409);
      expect(JSON.stringify(cancel.body)).toContain(`build ${id} is deploying release`);

      const followed = await cli(["build", "logs", id, "-f"]);
      expect(followed.code, followed.stdout).toBe(1);
      const reason = `${portMessage}; nothing was serving before`;
      expect(followed.stdout).toContain(`===> DEPLOY FAILED: ${reason}`);
      expect(followed.stdout).not.toContain("previous release keeps serving");

      const build = await buildDone<BuildView>(id);
      expect(build).toMatchObject({ status: "failure", phase: "deploy", reason: `deploy failed: ${reason}` });
      const lines = await logLines(id);
      expect(lines.at(-1)).toBe(`===> DEPLOY FAILED: ${reason}`);
      // The failed process's own words come just before the verdict.
      expect(lines).toContain("  | listening on 0.0.0.0:8080");
      const listed = await cli(["build", "list"]);
      expect(listed.stdout).toMatch(new RegExp(`${id}\\s+failure\\s`));
      const shown = await cli(["build", "show", id]);
      expect(shown.stdout).toContain(`build ${id}: failure (phase deploy)`);
    },
    LONG,
  );

  it(
    "a release that goes live ends the build as success, and `build logs -f` exits 0",
    async () => {
      await repo.commit({ "app.py": RIGHT_PY }, "listen on $PORT");
      const { id, code, stdout } = await pushAndFollow();
      expect(code, stdout).toBe(0);
      const build = await buildDone<BuildView>(id);
      expect(build.status, JSON.stringify(build)).toBe("success");
      expect(build.reason).toBe(`live as release ${build.release_id}`);
      expect((await logLines(id)).at(-1)).toBe(`===> LIVE: release ${build.release_id} serves ${TOOL}`);
      expect(await viaProxy(port, TOOL)).toEqual({ status: 200, body: "right" });
    },
    LONG,
  );

  it(
    "a later release that fails says the previous release keeps serving, and it does",
    async () => {
      await repo.commit({ "app.py": WRONG_PORT_PY }, "back to 8080");
      const { id, code, stdout } = await pushAndFollow();
      expect(code, stdout).toBe(1);
      const reason = `${portMessage}; the previous release keeps serving`;
      expect(stdout).toContain(`===> DEPLOY FAILED: ${reason}`);
      expect((await buildDone<BuildView>(id)).status).toBe("failure");
      expect((await logLines(id)).at(-1)).toBe(`===> DEPLOY FAILED: ${reason}`);
      expect(await viaProxy(port, TOOL)).toEqual({ status: 200, body: "right" });
    },
    LONG,
  );
});
