import { InputError } from "../../platform/errors.js";

/**
 * Tekton's `$(…)` variables as Slipway's definitions use them. Only these prefixes are Tekton's: a
 * script's own `$(git rev-parse HEAD)` is shell and stays as it is, as on a cluster.
 */
const VARIABLE = /\$\((params|workspaces|results|tasks|context|steps|step)([.[][^)]*)?\)/g;

export type Reference =
  | { readonly kind: "param"; readonly name: string }
  | { readonly kind: "workspace"; readonly name: string; readonly field: "path" | "bound" }
  | { readonly kind: "result"; readonly name: string }
  | { readonly kind: "task-result"; readonly task: string; readonly result: string };

/** What a text may refer to: a Task's params, workspaces and results, or a Pipeline's params and tasks. */
export interface VariableScope {
  readonly params: ReadonlySet<string>;
  readonly workspaces?: ReadonlySet<string>;
  readonly results?: ReadonlySet<string>;
  /** Whether pipeline task `task` has a result `result`. */
  readonly tasks?: (task: string, result: string) => boolean;
}

const NAME = "([A-Za-z0-9_][-A-Za-z0-9_]*)";
const FORMS: readonly [RegExp, (m: RegExpExecArray) => Reference][] = [
  [new RegExp(`^params\\.${NAME}$`), (m) => ({ kind: "param", name: m[1]! })],
  [
    new RegExp(`^workspaces\\.${NAME}\\.(path|bound)$`),
    (m) => ({ kind: "workspace", name: m[1]!, field: m[2] as "path" | "bound" }),
  ],
  [new RegExp(`^results\\.${NAME}\\.path$`), (m) => ({ kind: "result", name: m[1]! })],
  [
    new RegExp(`^tasks\\.${NAME}\\.results\\.${NAME}$`),
    (m) => ({ kind: "task-result", task: m[1]!, result: m[2]! }),
  ],
];

function parse(expression: string, where: string): Reference {
  for (const [re, make] of FORMS) {
    const m = re.exec(expression);
    if (m) return make(m);
  }
  throw new InputError(`${where}: $(${expression}) is not a variable the local executor supports`);
}

/** Replaces every Tekton variable of `text` with what `resolve` says it is. */
export function expand(text: string, resolve: (ref: Reference) => string, where: string): string {
  return text.replace(VARIABLE, (_all, head: string, rest: string | undefined) =>
    resolve(parse(`${head}${rest ?? ""}`, where)),
  );
}

/** Checks that every variable of `text` names something in `scope`; throws naming the first that does not. */
export function references(text: string, scope: VariableScope, where: string): void {
  expand(
    text,
    (ref) => {
      const known =
        ref.kind === "param"
          ? scope.params.has(ref.name)
          : ref.kind === "workspace"
            ? (scope.workspaces?.has(ref.name) ?? false)
            : ref.kind === "result"
              ? (scope.results?.has(ref.name) ?? false)
              : (scope.tasks?.(ref.task, ref.result) ?? false);
      if (!known) throw new InputError(`${where}: ${describe(ref)} is not declared`);
      return "";
    },
    where,
  );
}

function describe(ref: Reference): string {
  switch (ref.kind) {
    case "param":
      return `$(params.${ref.name})`;
    case "workspace":
      return `$(workspaces.${ref.name}.${ref.field})`;
    case "result":
      return `$(results.${ref.name}.path)`;
    case "task-result":
      return `$(tasks.${ref.task}.results.${ref.result})`;
  }
}
