// Cron parsing and macro spreading are shared with the local jobs runner; they live in domain/jobs.
export { expandSchedule, validateCron } from "../jobs/cron.js";
