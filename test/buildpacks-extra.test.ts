import { readFile, readdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeLayer } from "../services/adapters/oci/layer.js";
import type { LifecycleResult } from "../services/domain/lifecycle/types.js";
import { run } from "../services/platform/process.js";
import { type Builder, startBuilder } from "./helpers/buildpack-build.js";

let builder: Builder;
let root: string;
const figures: string[] = [];
// A cold build downloads packages and a Go toolchain; each test runs up to two builds.
const LONG = 600_000;

beforeAll(async () => {
  builder = await startBuilder("bpx");
  root = builder.root;
}, 600_000);

afterAll(async () => {
  if (figures.length > 0) console.log(["build figures:", ...figures].join("\n  "));
  await builder?.close();
});

/** A fresh copy of a fixture app (builds write into the app dir), plus extra files. */
const fixture: Builder["fixture"] = (...args) => builder.fixture(...args);
const build = (name: string, appDir: string) => builder.build(name, appDir);
const buildError: Builder["buildError"] = (...args) => builder.buildError(...args);
/** Runs the built app as its image would (run rootfs, layers at their paths, /cnb/process/web) and calls `use`. */
const serve: Builder["serve"] = (...args) => builder.serve(...args);

async function duBytes(dir: string): Promise<number> {
  const res = await run("du", ["-sb", dir], { env: process.env });
  return Number(res.stdout.split(/\s/)[0]);
}

async function layerFigures(label: string, result: LifecycleResult): Promise<void> {
  for (const l of result.layers) {
    figures.push(`${label} launch layer ${l.name}: ${((await duBytes(l.hostDir)) / 1e6).toFixed(1)} MB`);
  }
  const cache = path.join(root, label, "cache");
  for (const bp of await readdir(cache).catch(() => [])) {
    for (const entry of await readdir(path.join(cache, bp), { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const mb = (await duBytes(path.join(cache, bp, entry.name))) / 1e6;
      figures.push(`${label} cache layer ${bp}/${entry.name}: ${mb.toFixed(1)} MB`);
    }
  }
}

/** A raw request line, for paths fetch() would normalise (`/../x`). */
async function rawStatus(get: (p: string) => Promise<Response>, requestPath: string): Promise<number> {
  const url = new URL((await get("/")).url);
  const net = await import("node:net");
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), "127.0.0.1", () => {
      socket.write(`GET ${requestPath} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    });
    let data = "";
    socket.on("data", (d: Buffer) => (data += d.toString("latin1")));
    socket.on("end", () => resolve(Number(/^HTTP\/1\.[01] (\d{3})/.exec(data)?.[1] ?? 0)));
    socket.on("error", reject);
  });
}

describe("static buildpack", () => {
  it(
    "serves public/ with MIME types, cache headers, a 404 page, no listings and no traversal",
    async () => {
      const dir = await fixture("static-site");
      const cold = await build("static", dir);
      const warm = await build("static", dir);
      figures.push(`static: cold ${cold.seconds}s, warm ${warm.seconds}s`);
      await layerFigures("static", warm.result);
      expect(cold.result.group.map((g) => g.id)).toEqual(["slipway/static"]);
      expect(cold.result.processes).toEqual([
        expect.objectContaining({
          type: "web",
          command: ["python3"],
          default: true,
          buildpackId: "slipway/static",
        }),
      ]);
      expect(cold.result.processes[0]?.args?.[1]).toBe("public");
      expect(cold.result.layers.map((l) => l.name)).toEqual(["server"]);

      await serve("static", warm.result, async (get) => {
        const home = await get("/");
        expect(home.status).toBe(200);
        expect(home.headers.get("content-type")).toBe("text/html; charset=utf-8");
        expect(home.headers.get("cache-control")).toBe("no-cache");
        expect(await home.text()).toContain("hello from a static site");

        const types: Record<string, string> = {
          "/style.css": "text/css; charset=utf-8",
          "/assets/app.3f9a1c2b.js": "text/javascript; charset=utf-8",
          "/logo.svg": "image/svg+xml",
          "/module.wasm": "application/wasm",
          "/data.json": "application/json",
        };
        for (const [p, type] of Object.entries(types)) {
          const res = await get(p);
          expect(res.status, p).toBe(200);
          expect(res.headers.get("content-type"), p).toBe(type);
          await res.arrayBuffer();
        }
        expect((await get("/style.css")).headers.get("cache-control")).toBe("public, max-age=3600");
        expect((await get("/assets/app.3f9a1c2b.js")).headers.get("cache-control")).toBe(
          "public, max-age=31536000, immutable",
        );
        const etag = (await get("/style.css")).headers.get("etag") ?? "";
        expect((await get("/style.css", { headers: { "If-None-Match": etag } })).status).toBe(304);

        const missing = await get("/nope.html");
        expect(missing.status).toBe(404);
        expect(await missing.text()).toContain("custom 404 page");
        // No directory listing, no hidden files, nothing outside the document root.
        expect((await get("/docs/")).status).toBe(404);
        expect((await get("/docs/notes.txt")).status).toBe(200);
        expect((await get("/assets/")).status).toBe(404);
        expect((await get("/.htpasswd")).status).toBe(404);
        expect(await rawStatus(get, "/../.env")).toBe(404);
        expect(await rawStatus(get, "/%2e%2e/.env")).toBe(404);
        expect(await rawStatus(get, "/..%2f.env")).toBe(404);
        expect(await rawStatus(get, "/../README.md")).toBe(404);
        expect((await get("/", { method: "POST", body: "x" })).status).toBe(405);
      });
    },
    LONG,
  );

  it(
    "serves a root index.html and redirects a directory to its slash",
    async () => {
      const dir = await fixture(
        "",
        { "index.html": "<h1>root</h1>\n", "guide/index.html": "<h1>guide</h1>\n" },
        "static-root",
      );
      const { result } = await build("static-root", dir);
      expect(result.processes[0]?.args?.[1]).toBe(".");
      await serve("static-root", result, async (get) => {
        expect(await (await get("/")).text()).toBe("<h1>root</h1>\n");
        const redirect = await get("/guide");
        expect(redirect.status).toBe(301);
        expect(redirect.headers.get("location")).toBe("/guide/");
        expect(await (await get("/guide/")).text()).toBe("<h1>guide</h1>\n");
        expect((await get("/nope")).status).toBe(404);
      });
    },
    LONG,
  );

  it(
    "stays out of an app of another runtime, and says what it looked for",
    async () => {
      const dir = await fixture("", { "README.md": "# docs only\n" }, "static-none");
      const error = await buildError("static-none", dir);
      expect(error.code).toBe("detect_failed");
      expect(error.message).toContain("slipway/static: fail — looks for index.html or public/index.html");
      expect(error.message).toContain("slipway/php: fail — looks for composer.json, index.php");
      expect(error.message).toContain("slipway/go: fail — looks for go.mod");

      const mixed = await fixture(
        "",
        { "index.html": "<h1>x</h1>\n", "app.py": "print(1)\n" },
        "static-mixed",
      );
      const { result } = await build("static-mixed", mixed);
      expect(result.group.map((g) => g.id)).toEqual(["slipway/python"]);
    },
    LONG,
  );
});

describe("php buildpack", () => {
  it(
    "installs PHP 8.2 from Debian packages with a composer ext-* extension and serves index.php",
    async () => {
      const dir = await fixture("php-hello");
      const cold = await build("php", dir);
      expect(cold.result.group.map((g) => g.id)).toEqual(["slipway/php"]);
      expect(cold.lines.some((l) => l.startsWith("Installing PHP 8.2."))).toBe(true);
      await writeFile(
        path.join(dir, "index.php"),
        (await readFile(path.join(dir, "index.php"), "utf8")) + "echo 'warm';\n",
      );
      const warm = await build("php", dir);
      figures.push(`php: cold ${cold.seconds}s, warm ${warm.seconds}s`);
      await layerFigures("php", warm.result);
      expect(warm.lines.some((l) => l.startsWith("Reusing PHP 8.2."))).toBe(true);
      expect(warm.lines.some((l) => l.includes("Fetching the Debian package index"))).toBe(false);
      expect(warm.result.layers.map((l) => l.name)).toEqual(["php"]);
      expect(warm.result.processes).toEqual([
        expect.objectContaining({
          type: "web",
          command: ["bash", "-c"],
          default: true,
          buildpackId: "slipway/php",
        }),
      ]);

      await serve("php", warm.result, async (get) => {
        const res = await get("/");
        const body = await res.text();
        expect(res.status, body).toBe(200);
        expect(body).toMatch(/^hello from PHP 8\.2\.\d+ ÜNÏCODE\nwarm$/);
        expect((await get("/.env")).status).toBe(404);
        expect((await get("/composer.json")).status).toBe(404);
      });
    },
    LONG,
  );

  it(
    "fails clearly on composer.json dependencies without vendor/ and on invalid JSON",
    async () => {
      const dir = await fixture(
        "",
        {
          "composer.json": JSON.stringify({ require: { php: "^8.1", "monolog/monolog": "^3.0" } }),
          "public/index.php": "<?php echo 'x';\n",
        },
        "php-deps",
      );
      const error = await buildError("php-deps", dir);
      expect(error.details).toMatchObject({ buildpack: "slipway/php" });
      const tail = (error.details?.log_tail as string[]).join("\n");
      expect(tail).toContain(
        "composer.json requires monolog/monolog, but vendor/autoload.php is not in the repository",
      );
      expect(tail).toContain("commit the vendor/ directory");

      const bad = await fixture("", { "composer.json": '{ "require": { "php": "^8.1" } ' }, "php-badjson");
      const badError = await buildError("php-badjson", bad);
      expect((badError.details?.log_tail as string[]).join("\n")).toMatch(
        /composer\.json is not valid JSON: .* line 1/,
      );
    },
    LONG,
  );

  it(
    "uses a committed vendor/ as is",
    async () => {
      const dir = await fixture(
        "",
        {
          "composer.json": JSON.stringify({ require: { "acme/greeting": "^1.0" } }),
          "vendor/autoload.php": "<?php function greeting() { return 'vendored'; }\n",
          "public/index.php": "<?php require __DIR__ . '/../vendor/autoload.php'; echo greeting();\n",
        },
        "php-vendor",
      );
      const { result, lines } = await build("php-vendor", dir);
      expect(lines.some((l) => l.startsWith("Using the committed vendor/"))).toBe(true);
      await serve("php-vendor", result, async (get) => {
        expect(await (await get("/")).text()).toBe("vendored");
        expect((await get("/vendor/autoload.php")).status).toBe(404);
      });
    },
    LONG,
  );
});

describe("go buildpack", () => {
  it(
    "builds a stdlib net/http app offline into a launch layer holding only the binary",
    async () => {
      const dir = await fixture("go-hello");
      const cold = await build("go", dir);
      expect(cold.result.group.map((g) => g.id)).toEqual(["slipway/go"]);
      await writeFile(path.join(dir, "extra.go"), "package main\n\nconst extra = 1\n");
      const warm = await build("go", dir);
      figures.push(`go: cold ${cold.seconds}s, warm ${warm.seconds}s`);
      await layerFigures("go", warm.result);
      expect(warm.lines.some((l) => l.startsWith("Reusing Go "))).toBe(true);

      // Only the app layer is launched: the toolchain is a cache layer, not in the image.
      expect(warm.result.layers.map((l) => l.name)).toEqual(["app"]);
      const appLayer = warm.result.layers[0]!;
      const entries = (await readdir(appLayer.hostDir, { recursive: true })).sort();
      expect(entries).toEqual(["bin", "bin/hello"]);
      expect((await stat(path.join(appLayer.hostDir, "bin", "hello"))).size).toBeLessThan(20e6);
      // The buildpack layer as the exporter writes it into the image: the binary and its parent dirs only.
      const tar = path.join(root, "go", "app-layer.tar.gz");
      const blob = await writeLayer(appLayer.hostDir, appLayer.imagePath, tar);
      const listing = await run("tar", ["-tzf", blob.path], { env: process.env });
      expect(listing.stdout.trim().split("\n")).toEqual([
        "layers/",
        "layers/slipway_go/",
        "layers/slipway_go/app/",
        "layers/slipway_go/app/bin/",
        "layers/slipway_go/app/bin/hello",
      ]);
      figures.push(`go image layer (gzip): ${(blob.size / 1e6).toFixed(1)} MB`);
      expect(warm.result.processes).toEqual([
        expect.objectContaining({ type: "web", command: [`${appLayer.imagePath}/bin/hello`], default: true }),
      ]);

      await serve("go", warm.result, async (get) => {
        const res = await get("/");
        expect(res.status).toBe(200);
        expect(await res.text()).toMatch(/^hello from Go go1\.\d+/);
      });
    },
    LONG,
  );

  it(
    "builds with a committed vendor/ (GOFLAGS=-mod=vendor, no network)",
    async () => {
      const dir = await fixture(
        "",
        {
          "go.mod": "module example.com/vendored\n\ngo 1.21\n\nrequire example.com/greet v1.0.0\n",
          "vendor/modules.txt": "# example.com/greet v1.0.0\n## explicit; go 1.21\nexample.com/greet\n",
          "vendor/example.com/greet/greet.go":
            'package greet\n\nfunc Hello() string { return "vendored greeting" }\n',
          "main.go":
            'package main\n\nimport (\n\t"net/http"\n\t"os"\n\n\t"example.com/greet"\n)\n\n' +
            'func main() {\n\thttp.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(greet.Hello())) })\n' +
            '\thttp.ListenAndServe(":"+os.Getenv("PORT"), nil)\n}\n',
        },
        "go-vendor",
      );
      // Built with the "go" test's cache: the toolchain and the standard library's build cache are reused.
      const { result, lines } = await build("go", dir);
      expect(lines).toContain("Using the committed vendor/");
      expect(result.processes[0]?.command).toEqual(["/layers/slipway_go/app/bin/vendored"]);
      await serve("go-vendor", result, async (get) => {
        expect(await (await get("/")).text()).toBe("vendored greeting");
      });
    },
    LONG,
  );

  it(
    "fails with a message naming go.mod when a module cannot be fetched",
    async () => {
      const dir = await fixture(
        "",
        {
          "go.mod": "module example.com/deps\n\ngo 1.19\n\nrequire github.com/google/uuid v1.6.0\n",
          "main.go":
            'package main\n\nimport "github.com/google/uuid"\n\nfunc main() { println(uuid.NewString()) }\n',
        },
        "go-deps",
      );
      const error = await buildError("go-deps", dir);
      expect(error.details).toMatchObject({ buildpack: "slipway/go" });
      expect((error.details?.log_tail as string[]).join("\n")).toContain("go mod vendor");
    },
    LONG,
  );
});
