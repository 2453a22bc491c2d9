/**
 * How a job's command runs inside its container, on every runtime, as Toolforge's `launcher` does for
 * buildservice images: a Procfile process type runs that process, anything else runs in the app's
 * launch environment (one argument with spaces is a shell command line), and images without the CNB
 * launcher (plain images) get `sh -c`. Which process types an image has is only known inside it, hence
 * a check at run time. Run as `sh -c JOB_COMMAND_WRAPPER <name> <command>`.
 */
export const JOB_COMMAND_WRAPPER = [
  'c="$1"',
  'case "$c" in */*|*" "*) ;; *) if [ -x "/cnb/process/$c" ]; then exec "/cnb/process/$c"; fi ;; esac',
  'if [ -x /cnb/lifecycle/launcher ]; then exec /cnb/lifecycle/launcher "$c"; fi',
  'exec sh -c "$c"',
].join("\n");
