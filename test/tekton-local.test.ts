import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { podman } from "../services/adapters/podman/podman.js";
import { PodmanBuildSandbox } from "../services/adapters/podman/sandbox.js";
import { CNB_USER, ensureStack } from "../services/adapters/stack/index.js";
import { parseDefinitions, type Definitions } from "../services/adapters/tekton-local/definitions.js";
import { LocalTektonExecutor, type RunInput } from "../services/adapters/tekton-local/executor.js";
import { readPipelineFiles } from "../services/adapters/tekton/pipelines-dir.js";
import type { KubernetesObject } from "@kubernetes/client-node";
import type { Stack } from "../services/domain/lifecycle/types.js";
import { loadConfig } from "../services/platform/env.js";
import { PipelineError, SlipwayError } from "../services/platform/errors.js";
import { memoryLogger } from "../services/platform/logger.js";
import { git, gitRepo } from "./helpers/apps.js";
import { gitHttpBackend } from "./helpers/git-http.js";
import { TEST_STACK_HOME } from "./helpers/stack.js";

/**
 * The local Tekton executor against real podman: `pipelines/task-fetch.yaml` exactly as written, run in
 * the stack's build image (Debian's git and sh: what SLIPWAY_TEKTON_FETCH_IMAGE is locally) against a
 * real git-over-HTTP server that wants the deploy credential; and small Tasks of this file exercising
 * params, results, workspaces, the step's confinement, a failure, an OOM kill, cancel and timeout.
 */
const config = loadConfig({ ...process.env, SLIPWAY_HOME: TEST_STACK_HOME });
const OWNER = "slipway-build-test";
const DEPLOY_USER = "deploy-token-3";
const DEPLOY_PASSWORD = "tekton-local-s3cr3t-0123456789";

let root: string;
let stack: Stack;
let server: Server;
let repoUrl: string;
let first: string;
let tip: string;
let pipelines: Definitions;

function executor(definitions: Definitions, name: string) {
  const prefix = `slipway-tl-${randomBytes(4).toString("hex")}`;
  return {
    prefix,
    run: new LocalTektonExecutor(definitions, {
      // Host networking: the git server of this test listens on the host's loopback only.
      sandbox: () => PodmanBuildSandbox.create({ repoRoot: config.repoRoot, owner: OWNER }, "host"),
      user: { uid: CNB_USER.uid, gid: CNB_USER.gid },
      defaults: { memoryMb: 512, cpus: 1 },
      workDir: path.join(root, `${name}-${prefix}`, "tekton"),
      namePrefix: prefix,
    }),
  };
}

async function dir(name: string): Promise<string> {
  const d = path.join(root, `${name}-${randomBytes(3).toString("hex")}`);
  await mkdir(d, { recursive: true });
  return d;
}

async function leftovers(prefix: string): Promise<string> {
  const r = await podman(["ps", "-a", "--filter", `name=${prefix}`, "--format", "{{.Names}}"], {
    repoRoot: config.repoRoot,
  });
  return r.stdout.trim();
}

beforeAll(async () => {
  stack = await ensureStack(config, memoryLogger());
  await mkdir("/var/tmp/slipway-test-work", { recursive: true });
  root = await mkdtemp("/var/tmp/slipway-test-work/tekton-local-");
  const work = await gitRepo({ "server.js": "// first\n", "package.json": '{"name":"a"}\n' });
  first = (await git(work.dir, ["rev-parse", "HEAD"])).trim();
  tip = await work.commit({ "server.js": "// second\n" }, "second");
  const reposDir = path.join(root, "repos");
  await git(root, ["clone", "-q", "--bare", work.dir, path.join(reposDir, "group/app.git")]);
  const app = express();
  app.use(gitHttpBackend(reposDir, (user, password) => user === DEPLOY_USER && password === DEPLOY_PASSWORD));
  server = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  repoUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/group/app.git`;
  pipelines = parseDefinitions(await readPipelineFiles(path.join(config.repoRoot, "pipelines")));
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  if (root) await rm(root, { recursive: true, force: true });
});

describe("pipelines/task-fetch.yaml run locally", () => {
  async function fetchTask(commit: string, withCredential = true) {
    const source = await dir("source");
    // What a new volume or an earlier attempt leaves: the checkout is the workspace, nothing else.
    await mkdir(path.join(source, "lost+found"));
    await writeFile(path.join(source, "stale.js"), "// from an earlier attempt\n");
    const credential = await dir("credential");
    await writeFile(path.join(credential, "username"), DEPLOY_USER);
    await writeFile(path.join(credential, "password"), DEPLOY_PASSWORD);
    const lines: string[] = [];
    const steps: string[] = [];
    const { run, prefix } = executor(pipelines, "fetch");
    const input: RunInput = {
      params: { url: repoUrl, ref: "refs/heads/main", commit, "fetch-image": stack.buildImage },
      workspaces: withCredential ? { source, "deploy-credential": credential } : { source },
    };
    // As the Pipeline's task `fetch`, whose failures are the source's.
    const outcome = run.runTask(
      "slipway-fetch",
      input,
      {
        onLog: (l) => lines.push(l),
        onStep: (task, step) => steps.push(`${task}/${step}`),
        signal: new AbortController().signal,
      },
      "fetch",
    );
    return { outcome, source, lines, steps, prefix };
  }

  it("fetches the exact commit (not the branch tip) with the deploy credential, and reports its time", async () => {
    const { outcome, source, lines, steps, prefix } = await fetchTask(first);
    const { results } = await outcome;
    expect(await readFile(path.join(source, "server.js"), "utf8")).toBe("// first\n");
    expect((await readdir(source)).sort()).toEqual(["package.json", "server.js"]);
    const commitTime = (
      await git(root, [
        "--git-dir",
        path.join(root, "repos/group/app.git"),
        "log",
        "-1",
        "--format=%ct",
        first,
      ])
    ).trim();
    expect(results["commit-time"]).toBe(commitTime);
    expect(steps).toEqual(["fetch/fetch"]);
    expect(lines).toContain(`===> FETCHING ${repoUrl} refs/heads/main at ${first}`);
    expect(lines.join("\n")).not.toContain(DEPLOY_PASSWORD);
    // The checkout belongs to the build user, as on a cluster's volume with the pod's fsGroup.
    expect((await stat(path.join(source, "server.js"))).uid).toBe(CNB_USER.uid);
    expect(await leftovers(prefix)).toBe("");
    expect(tip).not.toBe(first);
  });

  it("fails as source_fetch_failed naming the step and its last lines when the repository refuses it", async () => {
    const { outcome } = await fetchTask(first, false);
    const error = (await outcome.catch((e: unknown) => e)) as PipelineError;
    expect(error).toBeInstanceOf(PipelineError);
    expect(error.code).toBe("source_fetch_failed");
    expect(error.message).toMatch(/^step fetch\/fetch exited with code \d+$/);
    expect(error.details?.step).toBe("fetch/fetch");
    expect((error.details?.log_tail as string[]).join("\n")).toMatch(
      /Authentication failed|could not read Username/,
    );
  });
});

/** Test Tasks in the build image: what the executor does with each part of a Task. */
const TEST_TASKS = `
apiVersion: tekton.dev/v1
kind: Task
metadata: { name: produce }
spec:
  params:
    - { name: image, type: string }
    - { name: greeting, type: string, default: hello }
    - { name: who, type: string }
  workspaces:
    - { name: shared }
    - { name: extra, optional: true }
  results:
    - { name: message, type: string }
  stepTemplate:
    env:
      - { name: GREETING, value: $(params.greeting) }
    securityContext:
      runAsNonRoot: true
      allowPrivilegeEscalation: false
      capabilities: { drop: [ALL] }
  steps:
    - name: write
      image: $(params.image)
      script: |
        echo "$GREETING $(params.who) as $(id -u) extra=$(workspaces.extra.bound)"
        echo "$GREETING $(params.who)" > $(workspaces.shared.path)/note
        echo private > /tmp/mine
        grep CapEff /proc/self/status
    - name: read
      image: $(params.image)
      securityContext: { runAsUser: 2000 }
      command: [sh, -c]
      args:
        - |
          echo "read as $(id -u)"
          test ! -e /tmp/mine && echo "tmp is the step's own"
          printf '%s!' "$(cat $(workspaces.shared.path)/note)" > $(results.message.path)
    - name: readonly
      image: $(params.image)
      securityContext: { readOnlyRootFilesystem: true }
      script: |
        touch /tmp/x 2>/dev/null && echo writable || echo "root filesystem is read-only"
---
apiVersion: tekton.dev/v1
kind: Task
metadata: { name: consume }
spec:
  params:
    - { name: image }
    - { name: message }
  results:
    - { name: length }
  steps:
    - name: count
      image: $(params.image)
      script: |
        echo "got: $(params.message)"
        printf '%s' "$(params.message)" | wc -c | tr -d ' \\n' > $(results.length.path)
---
apiVersion: tekton.dev/v1
kind: Task
metadata: { name: misbehave }
spec:
  params:
    - { name: image }
    - { name: what }
  steps:
    - name: act
      image: $(params.image)
      computeResources:
        limits: { memory: 64Mi, cpu: 500m }
      script: |
        #!/bin/sh
        echo started
        case "$(params.what)" in
          fail) for i in $(seq 1 40); do echo "line $i"; done; exit 3 ;;
          oom) exec python3 -c "b = bytearray(400 * 1024 * 1024); print(len(b))" ;;
          sleep) exec sleep 60 ;;
        esac
    - name: after
      image: $(params.image)
      # Smaller than act's: the Task's one container gets the larger of its steps' limits.
      computeResources:
        limits: { memory: 32Mi }
      command: [echo, "after ran"]
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: { name: both }
spec:
  params:
    - { name: image }
  workspaces:
    - { name: shared }
  results:
    - { name: length, value: $(tasks.consume.results.length) }
  tasks:
    - name: consume
      taskRef: { name: consume }
      params:
        - { name: image, value: $(params.image) }
        - { name: message, value: $(tasks.produce.results.message) }
    - name: produce
      taskRef: { name: produce }
      params:
        - { name: image, value: $(params.image) }
        - { name: who, value: pipeline }
      workspaces:
        - { name: shared, workspace: shared }
`;

describe("the local executor runs a Task's parts as Tekton does", () => {
  const definitions = () =>
    parseDefinitions(
      parseAllDocuments(TEST_TASKS).map((d) => ({ file: "test", object: d.toJS() as KubernetesObject })),
    );
  const signal = () => new AbortController().signal;

  it("passes params (with defaults), a shared workspace and results between steps and tasks", async () => {
    const { run, prefix } = executor(definitions(), "both");
    const lines: string[] = [];
    const outcome = await run.runPipeline(
      "both",
      { params: { image: stack.buildImage }, workspaces: { shared: await dir("shared") } },
      { onLog: (l) => lines.push(l), signal: signal() },
    );
    // `consume` refers to produce's result, so it runs after it although it is listed first.
    expect(outcome.taskRuns.map((t) => t.metadata?.labels?.["tekton.dev/pipelineTask"])).toEqual([
      "produce",
      "consume",
    ]);
    expect(lines).toContain(`hello pipeline as ${CNB_USER.uid} extra=false`);
    expect(lines).toContain("CapEff:\t0000000000000000");
    expect(lines).toContain("read as 2000");
    expect(lines).toContain("tmp is the step's own");
    expect(lines).toContain("root filesystem is read-only");
    expect(lines).toContain("got: hello pipeline!");
    expect(outcome.results).toEqual({ length: String("hello pipeline!".length) });
    expect(await leftovers(prefix)).toBe("");
  });

  async function misbehave(what: string, options: { timeoutMs?: number; abortOn?: string } = {}) {
    const { run, prefix } = executor(definitions(), what);
    const controller = new AbortController();
    const lines: string[] = [];
    const error = await run
      .runTask(
        "misbehave",
        { params: { image: stack.buildImage, what }, workspaces: {}, timeoutMs: options.timeoutMs },
        {
          onLog: (l) => {
            lines.push(l);
            if (l === options.abortOn) controller.abort(new SlipwayError("cancelled", "build cancelled"));
          },
          signal: controller.signal,
        },
      )
      .catch((e: unknown) => e as SlipwayError);
    return { error: error as SlipwayError, lines, prefix };
  }

  it("a failing step ends the Task: exit code, step and its last 30 lines; later steps do not run", async () => {
    const { error, lines } = await misbehave("fail");
    expect(error).toBeInstanceOf(PipelineError);
    expect(error.code).toBe("build_failed");
    expect(error.message).toBe("step misbehave/act exited with code 3");
    expect(error.details?.exit_code).toBe(3);
    const tail = error.details?.log_tail as string[];
    expect(tail).toHaveLength(30);
    expect(tail.at(-1)).toBe("line 40");
    expect(lines).not.toContain("after ran");
  });

  it("a step over its memory limit is reported as out of memory, with the limit", async () => {
    const { error } = await misbehave("oom");
    expect(error.message).toBe("build ran out of memory (limit 64 MiB)");
    expect(error.details?.limit).toEqual({ kind: "memory", limitMb: 64 });
    expect(error.details?.step).toBe("misbehave/act");
  });

  it("cancel stops the running step's container and ends the run cancelled", async () => {
    const { error, prefix } = await misbehave("sleep", { abortOn: "started" });
    expect(error.code).toBe("cancelled");
    expect(error.message).toBe("build cancelled");
    expect(await leftovers(prefix)).toBe("");
  });

  it("the run's timeout stops it as out of time", async () => {
    const { error } = await misbehave("sleep", { timeoutMs: 8000 });
    expect(error.code).toBe("build_failed");
    expect(error.message).toMatch(/^the build ran out of time/);
    expect(error.details?.limit).toEqual({ kind: "time" });
  });
});
