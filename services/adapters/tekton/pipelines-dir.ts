import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import type { KubernetesObject } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";

/** One object of `pipelines/` and the file it was read from (named in errors about it). */
export interface PipelineFileObject {
  readonly file: string;
  readonly object: KubernetesObject;
}

/**
 * Every object of `pipelines/*.yaml`, in file order: the Tasks and the Pipeline a cluster runs builds
 * with, and the local executor runs with podman. Read by both, so neither has its own copy.
 */
export async function readPipelineFiles(dir: string): Promise<PipelineFileObject[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".yaml")).sort();
  const out: PipelineFileObject[] = [];
  for (const file of files) {
    for (const doc of parseAllDocuments(await readFile(path.join(dir, file), "utf8"))) {
      const object = doc.toJS() as KubernetesObject | null;
      if (object) out.push({ file: path.join(path.basename(dir), file), object });
    }
  }
  return out;
}

/** Reads every object of `pipelines/*.yaml`: the Tasks and the Pipeline a cluster runs builds with. */
export async function readPipelines(dir: string): Promise<KubernetesObject[]> {
  return (await readPipelineFiles(dir)).map((o) => o.object);
}
