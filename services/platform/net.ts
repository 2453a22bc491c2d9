import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { TransientError } from "./errors.js";

/** Whether a host name (without port) is this machine's loopback: the only place plain HTTP is allowed. */
export function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** A TCP port on loopback that nothing listens on right now (for children started on "random" ports). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Whether something accepts connections on the port right now. */
export function isListening(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Resolves once something accepts connections on the port. */
export async function waitForPort(port: number, timeoutMs: number, host = "127.0.0.1"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await isListening(port, host)) return;
    if (Date.now() > deadline)
      throw new TransientError(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}
