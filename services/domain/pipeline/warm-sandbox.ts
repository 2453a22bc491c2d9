import type { BuildSandbox, Sandbox, SandboxSpec } from "../../ports/sandbox.js";

/**
 * A build sandbox started ahead, while the source is still being fetched, on a guess of what the build
 * will ask for (the default stack, Slipway's buildpacks, the build's own directories): a container start
 * takes about as long as the fetch of a code-only change, and they need not wait for each other.
 *
 * The build takes the early container only when it asks for exactly the guessed spec. Otherwise (an
 * app that chose another stack, or brought inline buildpacks) the early one is removed first, since
 * both carry the build's name, and one is started as usual. A guess that failed to start costs nothing
 * but the attempt. `discard()` removes an early container no build took (a fetch that failed, a push
 * the deploy policy stopped).
 */
export class WarmSandbox implements BuildSandbox {
  private early: { readonly spec: Promise<SandboxSpec>; readonly sandbox: Promise<Sandbox> } | undefined;

  constructor(private readonly inner: BuildSandbox) {}

  /** Starts the guessed sandbox now; `spec` may still be being worked out (it reads the buildpacks). */
  prestart(spec: Promise<SandboxSpec>): void {
    const sandbox = spec.then((s) => this.inner.start(s));
    // Nobody may await it (a build that never asks): its failure is handled where it is awaited.
    sandbox.catch(() => undefined);
    this.early = { spec, sandbox };
  }

  async start(spec: SandboxSpec): Promise<Sandbox> {
    const early = this.early;
    this.early = undefined;
    if (early) {
      const guessed = await early.spec.catch(() => undefined);
      if (guessed && sameSpec(guessed, spec)) {
        const sandbox = await early.sandbox.catch(() => undefined);
        if (sandbox) return sandbox;
      } else {
        await closeEarly(early.sandbox);
      }
    }
    return this.inner.start(spec);
  }

  /** Removes the early sandbox if no build took it; nothing otherwise (the build closes its own). */
  async discard(): Promise<void> {
    const early = this.early;
    this.early = undefined;
    if (early) await closeEarly(early.sandbox);
  }
}

async function closeEarly(sandbox: Promise<Sandbox>): Promise<void> {
  const started = await sandbox.catch(() => undefined);
  await started?.close();
}

/** Specs are plain data: equal when every field, and every mount in order, is. */
function sameSpec(a: SandboxSpec, b: SandboxSpec): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
