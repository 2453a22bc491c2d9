import { describe, expect, it } from "vitest";
import type { BuildSandbox, Sandbox } from "../../ports/sandbox.js";
import { TimedSandbox } from "./sandbox-timings.js";

/** A sandbox whose removal finishes only when the test says so; the clock moves 100 ms per step. */
function fakes() {
  let finishRemoval: () => void = () => undefined;
  const removal = new Promise<void>((resolve) => (finishRemoval = resolve));
  let removed = false;
  const inner: BuildSandbox = {
    start: () =>
      Promise.resolve<Sandbox>({
        exec: () => Promise.resolve({ exitCode: 0 }),
        close: () => removal.then(() => void (removed = true)),
      }),
  };
  let t = 0;
  const now = () => (t += 100);
  return { inner, now, finishRemoval, isRemoved: () => removed };
}

const spec = { name: "b", image: "i", mounts: [], user: "1:1", memoryMb: 1, cpus: 1, env: {} };
const opts = { env: {}, workdir: "/workspace", onOutput: () => undefined };

describe("TimedSandbox", () => {
  it("names the container start, the one detect and each buildpack's build in the summary", async () => {
    const f = fakes();
    const timed = new TimedSandbox(f.inner, () => undefined, f.now);
    const sandbox = await timed.start(spec);
    await sandbox.exec(["bash", "/layers/.slipway/detect/run"], opts);
    await sandbox.exec(["/cnb/buildpacks/slipway_nodejs/0.9.0/bin/build"], opts);
    expect(timed.summary()).toBe("start 0.10 s, detect 0.10 s, slipway_nodejs build 0.10 s");
  });

  it("returns from close at once and removes the container in the background", async () => {
    const f = fakes();
    const timed = new TimedSandbox(f.inner, () => undefined, f.now);
    const sandbox = await timed.start(spec);
    await sandbox.close();
    expect(f.isRemoved()).toBe(false);
    f.finishRemoval();
    await timed.removed;
    expect(f.isRemoved()).toBe(true);
  });

  it("reports a removal that fails instead of leaving it unhandled", async () => {
    const errors: unknown[] = [];
    const inner: BuildSandbox = {
      start: () =>
        Promise.resolve<Sandbox>({
          exec: () => Promise.resolve({ exitCode: 0 }),
          close: () => Promise.reject(new Error("podman is gone")),
        }),
    };
    const timed = new TimedSandbox(inner, (e) => errors.push(e));
    await (await timed.start(spec)).close();
    await timed.removed;
    expect(errors).toHaveLength(1);
  });
});
