import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { exportImage } from "../../adapters/oci/export.js";
import { readRunImageLayer } from "../../adapters/oci/run-image.js";
import { ProcessBuildSandbox } from "../../adapters/process/sandbox.js";
import { RegistryClient } from "../../adapters/registry/client.js";
import { readDockerLogin } from "../../adapters/registry/docker-config.js";
import { loadBuildpackOrder } from "../../domain/lifecycle/buildpack-order.js";
import {
  type LifecycleInput,
  readLifecycleState,
  runLifecyclePhase,
} from "../../domain/lifecycle/lifecycle.js";
import { pipEnvironment } from "../../domain/lifecycle/pip-env.js";
import type { Stack } from "../../domain/lifecycle/types.js";
import { InputError } from "../../platform/errors.js";
import type { ExportOptions, LifecycleCommand, LifecycleSettings } from "./command.js";

export interface LifecycleRun {
  readonly settings: LifecycleSettings;
  /** The environment every build step starts from (the image's, without Slipway's own settings). */
  readonly stepEnv: Readonly<Record<string, string>>;
  readonly uid: number;
  readonly gid: number;
  readonly signal: AbortSignal;
  readonly onLog: (line: string) => void;
  readonly onBuildpack?: (id: string) => void;
}

/**
 * Runs one command of slipway-lifecycle in this container: the phases over the shared directories,
 * each its own process (state between them in the layers' scratch), then export with the push
 * credential that only the export step has.
 */
export async function runLifecycleCommand(command: LifecycleCommand, run: LifecycleRun): Promise<void> {
  if (command.name === "export") return exportCommand(command, run);
  const { settings } = run;
  const needsCache = command.name === "save-cache" || (command.name === "restore" && !command.noCache);
  if (needsCache && !settings.cacheDir)
    throw new InputError(`${command.name} needs the build cache: SLIPWAY_CACHE_DIR is not set`);
  const { buildpacks, order } = await loadBuildpackOrder(settings.buildpacksDir);
  // The build image is the stack: its user is the one this runs as, and there is no other to choose.
  const stack: Stack = { id: "build-image", buildImage: "", runRootfs: "", uid: run.uid, gid: run.gid };
  const input: LifecycleInput = {
    sandbox: ProcessBuildSandbox.create(run.stepEnv),
    stack,
    buildpacks,
    order,
    appDir: settings.appDir,
    workDir: settings.layersDir,
    inPlace: { layersDir: settings.layersDir },
    cacheDir: settings.cacheDir ?? path.join(settings.layersDir, ".slipway", "no-cache"),
    noCache: command.name === "restore" && command.noCache,
    env: pipEnvironment(settings.pipIndexUrl),
    sourceDateEpoch: settings.sourceDateEpoch,
    limits: { memoryMb: 0, cpus: 0 },
    npmRegistry: settings.npmRegistry,
    debianMirror: settings.debianMirror,
    name: "slipway-lifecycle",
    signal: run.signal,
    onLog: run.onLog,
    onBuildpack: run.onBuildpack,
  };
  const state = await runLifecyclePhase(command.name, input);
  if (command.name === "build" && command.processesResult) {
    const processes = (state.result?.processes ?? []).map((p) => ({
      type: p.type,
      buildpackId: p.buildpackId,
    }));
    await writeFile(command.processesResult, JSON.stringify(processes));
  }
}

async function exportCommand(options: ExportOptions, run: LifecycleRun): Promise<void> {
  const { settings } = run;
  const state = await readLifecycleState(settings.layersDir);
  if (!state.result) throw new InputError(`${settings.layersDir} holds no finished build: run build first`);
  const target = parseImage(options.image, "--image");
  const runImage = parseImage(options.runImage, "--run-image");
  if (runImage.host !== target.host)
    throw new InputError(
      `--run-image must be in the registry the image goes to (${target.host}), not ${runImage.host}: its layer is mounted, not copied`,
    );
  if (!settings.dockerConfigDir)
    throw new InputError("export needs the push credential: DOCKER_CONFIG is not set");
  const login = await readDockerLogin(settings.dockerConfigDir, target.host);
  const registry = RegistryClient.create({
    url: `${insecureHost(target.host) ? "http" : "https"}://${target.host}`,
    username: login?.username,
    password: login?.password,
  });
  const baseLayer = await readRunImageLayer(registry, runImage.repository, runImage.tag);
  const stack: Stack = state.result.stack ?? {
    id: runImage.tag,
    buildImage: "",
    runRootfs: "",
    uid: run.uid,
    gid: run.gid,
  };
  // The source workspace is read-only here: the layers are written to this container's own /tmp.
  const workDir = await mkdtemp(path.join(os.tmpdir(), "slipway-export-"));
  try {
    run.onLog("===> EXPORTING");
    const exported = await exportImage(registry, {
      result: state.result,
      stack: { ...stack, id: runImage.tag },
      sourceDateEpoch: settings.sourceDateEpoch,
      repository: target.repository,
      tag: target.tag,
      source: { commit: options.commit, repository: options.sourceUrl.replace(/\/\/[^@/]*@/, "//") },
      workDir,
      baseRepository: runImage.repository,
      baseLayer,
      // Written only by export steps (the build Task never mounts it): what it holds is trusted as a
      // layer of this tool component's image.
      layerCacheDir: options.layerCache,
    });
    if (options.layerCache)
      run.onLog(
        `Layer cache: ${exported.layersFromCache} of ${exported.layers.length - 2} launch and launcher ` +
          "layers unchanged, not written again",
      );
    for (const layer of exported.layers)
      run.onLog(
        `${layer.uploaded ? "Uploaded" : "Reused"} layer ${layer.role} ${layer.name} ${layer.digest}`,
      );
    run.onLog(`Pushed ${exported.image}@${exported.digest} (${exported.blobsUploaded} blobs uploaded)`);
    if (options.digestResult) await writeFile(options.digestResult, exported.digest);
    if (options.imageResult) await writeFile(options.imageResult, exported.image);
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** `host[:port]/repository:tag`; the host is required, as the credential is looked up by it. */
export function parseImage(ref: string, option: string): { host: string; repository: string; tag: string } {
  const match = /^([A-Za-z0-9.-]+(?::\d+)?)\/([a-z0-9._/-]+):([A-Za-z0-9_][A-Za-z0-9._-]{0,127})$/.exec(ref);
  if (!match)
    throw new InputError(`${option} must be <registry host>/<repository>:<tag>, not ${JSON.stringify(ref)}`);
  const [, host, repository, tag] = match as unknown as [string, string, string, string];
  // As docker tells a registry from a repository's first part: a dot, a port, or localhost.
  if (!/[.:]/.test(host) && host !== "localhost")
    throw new InputError(`${option} must start with the registry host, not ${JSON.stringify(ref)}`);
  return { host, repository, tag };
}

/** As docker does: a registry on this machine is spoken to over plain HTTP, any other over HTTPS. */
function insecureHost(host: string): boolean {
  const name = host.replace(/:\d+$/, "");
  return name === "localhost" || name === "127.0.0.1" || name === "[::1]";
}
