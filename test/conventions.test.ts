import path from "node:path";
import { describe, expect, it } from "vitest";
import { git, gitRepo, viaProxy, waitFor } from "./helpers/apps.js";
import { FIXTURES } from "./helpers/buildpack-build.js";
import { buildIdFrom, clientOf, localServerForFile } from "./helpers/local-server.js";

/**
 * Apps written for other platforms' conventions, pushed to a local Slipway and checked live through
 * the front proxy: a Dokku/Heroku app that lives in /app (build, release phase and run), a Go app
 * without go.mod (GOPATH style, Godeps), and Paketo samples whose project.toml sets BP_* variables.
 */
const TOOLS = {
  dokku: "conv-dokku",
  gopath: "conv-gopath",
  staticSite: "conv-static",
  php: "conv-php",
} as const;
const local = localServerForFile({ name: "conventions" }, Object.values(TOOLS));
const client = clientOf(() => local.server);
const { api } = client;

interface BuildView {
  id: string;
  status: string;
  reason: string | null;
  release_id: string | null;
}

interface ReleaseView {
  status: string;
  reason: string | null;
  log_tail: string[];
}

/** Creates the tool, pushes the fixture app to it, and waits for its build and release to settle. */
async function pushFixture(
  tool: string,
  fixture: string,
): Promise<{ build: BuildView; release: ReleaseView; log: string[] }> {
  const created = await api<{ git_url: string; token: string }>("/api/v1/tools", {
    method: "POST",
    body: JSON.stringify({ name: tool }),
  });
  const repo = await gitRepo({}, path.join(FIXTURES, fixture));
  const pushUrl = created.git_url.replace("http://", `http://user:${created.token}@`);
  const build = await client.buildDone<BuildView>(
    buildIdFrom(await git(repo.dir, ["push", pushUrl, "main"])),
  );
  expect(build.status, build.reason ?? "").toBe("success");
  const release = await waitFor(
    `release of ${tool}`,
    async () => {
      const r = await api<ReleaseView>(`/api/v1/tools/${tool}/releases/${build.release_id!}`);
      return r.status !== "deploying" ? r : undefined;
    },
    180_000,
  );
  // Read after the release settled: the release phase's output joins the build log.
  const { lines: log } = await api<{ lines: string[] }>(`/api/v1/builds/${build.id}/logs`);
  expect(release.status, `${JSON.stringify(release)}\n${log.join("\n")}`).toBe("live");
  return { build, release, log };
}

const LONG = 900_000;

describe("other platforms' conventions", () => {
  it(
    "a Dokku app that assumes /app: its build step, release phase and web process all find it",
    async () => {
      const { log } = await pushFixture(TOOLS.dokku, "dokku-app-dir");
      expect(log).toContain("post-compile: wrote /app/built.txt");
      expect(log).toContain("  | release phase wrote /app/released; /app is /workspace");
      expect(await viaProxy(local.port, TOOLS.dokku)).toEqual({
        status: 200,
        body: "hello from /app; built in /app; /app is /workspace",
      });
    },
    LONG,
  );

  it(
    "a Go app without go.mod (Godeps/Godeps.json import path) builds GOPATH style, with BP_GO_TARGETS and BP_GO_BUILD_LDFLAGS",
    async () => {
      const { log } = await pushFixture(TOOLS.gopath, "go-gopath");
      expect(log).toContain(
        "No go.mod: building GOPATH style (GO111MODULE=off) as github.com/heroku/go-gopath-sample (Godeps/Godeps.json ImportPath)",
      );
      expect(log).toContain("Building github.com/heroku/go-gopath-sample/cmd/migrate -> bin/migrate");
      // The first target is the web process, although cmd/migrate comes first in the package list.
      expect(await viaProxy(local.port, TOOLS.gopath)).toEqual({
        status: 200,
        body: "hello from a GOPATH app (BP_GO_BUILD_LDFLAGS)\n",
      });
    },
    LONG,
  );

  it(
    "a Paketo web-servers app (BP_WEB_SERVER=nginx, BP_WEB_SERVER_ROOT, push state) is served; an unknown BP_ variable is warned about",
    async () => {
      const { log } = await pushFixture(TOOLS.staticSite, "paketo-static");
      const warning = log.find((l) => l.startsWith("warning: BP_LIVE_RELOAD_ENABLED"));
      expect(warning).toBe(
        "warning: BP_LIVE_RELOAD_ENABLED is not used by any buildpack here; known: BP_WEB_SERVER, BP_WEB_SERVER_ENABLE_PUSH_STATE, BP_WEB_SERVER_ROOT",
      );
      // Declared and used: no warning for those.
      expect(log.filter((l) => /^warning: BP_WEB_SERVER/.test(l))).toEqual([]);
      const home = await viaProxy(local.port, TOOLS.staticSite);
      expect(home.status).toBe(200);
      expect(home.body).toContain("served from site/ by BP_WEB_SERVER=nginx");
      expect(await viaProxy(local.port, TOOLS.staticSite, "/assets/app.js")).toEqual({
        status: 200,
        body: 'console.log("router");\n',
      });
      // A route of the single-page app: push state serves index.html instead of a 404.
      const route = await viaProxy(local.port, TOOLS.staticSite, "/users/42");
      expect(route.status).toBe(200);
      expect(route.body).toContain("served from site/");
    },
    LONG,
  );

  it(
    "a Paketo PHP app is served from BP_PHP_WEB_DIR=htdocs",
    async () => {
      const { log } = await pushFixture(TOOLS.php, "paketo-php");
      expect(log).toContain("Document root from BP_PHP_WEB_DIR: htdocs");
      expect(log.filter((l) => l.startsWith("warning: BP_"))).toEqual([]);
      expect(await viaProxy(local.port, TOOLS.php)).toEqual({
        status: 200,
        body: "hello from htdocs, PHP 8\n",
      });
    },
    LONG,
  );
});
