import http from "node:http";
import net from "node:net";
import type { HealthProbe, ProbeResult } from "../../ports/probe.js";

/** TCP connect by default; with a path, an HTTP GET that must answer below 400. */
export class NetProbe implements HealthProbe {
  constructor(private readonly timeoutMs = 2000) {}

  probe(address: { host: string; port: number }, httpPath?: string): Promise<ProbeResult> {
    return httpPath ? this.http(address, httpPath) : this.tcp(address);
  }

  private tcp(address: { host: string; port: number }): Promise<ProbeResult> {
    return new Promise((resolve) => {
      const socket = net.connect({ host: address.host, port: address.port });
      const done = (r: ProbeResult) => {
        socket.destroy();
        resolve(r);
      };
      socket.setTimeout(this.timeoutMs, () => done({ ok: false, detail: "TCP connect timed out" }));
      socket.once("connect", () => {
        // podman's port forwarder accepts before the app listens; a real answer needs the app to speak.
        socket.write("GET / HTTP/1.0\r\nHost: health\r\n\r\n");
      });
      socket.once("data", () => done({ ok: true, detail: "answered on TCP" }));
      socket.once("end", () => done({ ok: false, detail: "connection closed without an answer" }));
      socket.once("error", (e: NodeJS.ErrnoException) => done({ ok: false, detail: e.code ?? e.message }));
    });
  }

  private http(address: { host: string; port: number }, path: string): Promise<ProbeResult> {
    return new Promise((resolve) => {
      const req = http.get(
        { host: address.host, port: address.port, path, timeout: this.timeoutMs },
        (res) => {
          res.resume();
          const code = res.statusCode ?? 0;
          resolve({ ok: code >= 200 && code < 400, detail: `HTTP ${code} from ${path}` });
        },
      );
      req.on("timeout", () => req.destroy(new Error("timed out")));
      req.on("error", (e: NodeJS.ErrnoException) =>
        resolve({ ok: false, detail: `${path}: ${e.code ?? e.message}` }),
      );
    });
  }
}
