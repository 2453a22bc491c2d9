import { spawn } from "node:child_process";
import type { Request, Response } from "express";

/**
 * git's smart-HTTP `http-backend` as a CGI behind an HTTP Basic check, as GitLab serves repositories:
 * `authorize(user, password, repository)` decides, `repository` being the path before `.git`
 * (`group/project`). A refusal is GitLab's 401 with `WWW-Authenticate: Basic`.
 */
export function gitHttpBackend(
  reposDir: string,
  authorize: (user: string, password: string, repository: string) => boolean,
): (req: Request, res: Response) => void {
  return (req, res) => {
    const repository = /^\/(.+?)\.git\//.exec(req.path)?.[1] ?? "";
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? "");
    const decoded = basic ? Buffer.from(basic[1]!, "base64").toString("utf8") : "";
    const colon = decoded.indexOf(":");
    const user = colon < 0 ? "" : decoded.slice(0, colon);
    const password = colon < 0 ? "" : decoded.slice(colon + 1);
    if (!basic || !authorize(user, password, repository)) {
      res.status(401).set("WWW-Authenticate", 'Basic realm="GitLab"').send("HTTP Basic: Access denied\n");
      return;
    }
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      GIT_PROJECT_ROOT: reposDir,
      GIT_HTTP_EXPORT_ALL: "1",
      PATH_INFO: req.path,
      REQUEST_METHOD: req.method,
      QUERY_STRING: req.url.includes("?") ? req.url.slice(req.url.indexOf("?") + 1) : "",
      CONTENT_TYPE: req.headers["content-type"] ?? "",
      REMOTE_USER: user,
    };
    if (typeof req.headers["git-protocol"] === "string") env.HTTP_GIT_PROTOCOL = req.headers["git-protocol"];
    if (typeof req.headers["content-encoding"] === "string")
      env.HTTP_CONTENT_ENCODING = req.headers["content-encoding"];
    const cgi = spawn("/usr/lib/git-core/git-http-backend", [], { env });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headerDone = false;
    cgi.stdout.on("data", (chunk: Buffer) => {
      if (headerDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      headerDone = true;
      for (const line of head.subarray(0, end).toString("utf8").split("\r\n")) {
        const i = line.indexOf(":");
        const name = line.slice(0, i).trim();
        const value = line.slice(i + 1).trim();
        if (name.toLowerCase() === "status") res.status(Number(value.split(" ")[0]));
        else res.setHeader(name, value);
      }
      res.write(head.subarray(end + 4));
    });
    cgi.on("close", () => res.end());
  };
}
