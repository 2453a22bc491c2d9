import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, readdir } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { promisify } from "node:util";

/**
 * A PEP 503 simple index of wheels made from Debian trixie's packaged Python libraries (PyPI is not
 * reachable here): python-index.py unpacks the .debs and zips each as a py3-none-any wheel. Listens on
 * 0.0.0.0 so build containers reach it at host.containers.internal.
 */
export async function startPythonIndex(
  workDir: string,
  packages: readonly string[],
): Promise<{ url: (host: string) => string; close: () => Promise<void> }> {
  const wheels = path.join(workDir, "wheels");
  await mkdir(wheels, { recursive: true });
  await promisify(execFile)(
    "python3",
    [path.join(import.meta.dirname, "python-index.py"), wheels, path.join(workDir, "debs"), ...packages],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  const files = new Map<string, Buffer>();
  for (const f of await readdir(wheels)) files.set(f, await readFile(path.join(wheels, f)));
  // PEP 503: project names are normalized; a wheel's name part is the project name.
  const project = (f: string) =>
    f
      .split("-")[0]!
      .toLowerCase()
      .replace(/[-_.]+/g, "-");
  const server = http.createServer((req, res) => {
    const url = req.url ?? "/";
    const m = /^\/simple\/([^/]+)\/?$/.exec(url);
    if (m) {
      const name = m[1]!.toLowerCase().replace(/[-_.]+/g, "-");
      const links = [...files]
        .filter(([f]) => project(f) === name)
        .map(
          ([f, b]) => `<a href="/files/${f}#sha256=${createHash("sha256").update(b).digest("hex")}">${f}</a>`,
        );
      if (links.length === 0) return void res.writeHead(404).end();
      return void res
        .writeHead(200, { "content-type": "text/html" })
        .end(`<html><body>${links.join("\n")}</body></html>`);
    }
    const file = /^\/files\/([^/]+)$/.exec(url)?.[1];
    const body = file ? files.get(file) : undefined;
    if (body) return void res.writeHead(200, { "content-type": "application/octet-stream" }).end(body);
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "0.0.0.0", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (host) => `http://${host}:${port}/simple/`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
