import type { Server } from "node:http";
import express from "express";
import type { JobService } from "../../services/domain/jobs/job-service.js";
import type { ToolService } from "../../services/domain/tools/tool-service.js";
import type { Logger } from "../../services/platform/logger.js";
import { jobsRouter } from "../../services/roles/http/api-jobs.js";
import { errorHandler } from "../../services/roles/http/errors.js";

export interface JobsApi {
  /** `http://127.0.0.1:<port>/api/v1/tools/<tool>/jobs` */
  readonly base: string;
  close(): Promise<void>;
}

/** The real jobs router and error mapper on a loopback port, called as the admin, over `jobs`. */
export async function startJobsApi(jobs: JobService, tool: string, logger: Logger): Promise<JobsApi> {
  const app = express();
  app.use(express.json());
  app.use((req, _res, next) => {
    req.principal = { kind: "admin" };
    next();
  });
  app.use(
    jobsRouter({
      tools: { get: (name: string) => Promise.resolve({ name }) } as unknown as ToolService,
      jobs,
    }),
  );
  app.use(errorHandler(logger));
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    base: `http://127.0.0.1:${port}/api/v1/tools/${tool}/jobs`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A one-off job definition (`fields` change it); the scale bench puts thousands of them. */
export { standInJob as testJob } from "../../bench/scale.js";
