/** Which of the two stack images a progress report is about. */
export type StackImage = "build" | "run";

/** Where one image's build stands: step `step` of `total`, and how far through the whole image. */
export interface StackStep {
  readonly image: StackImage;
  readonly step: number;
  readonly total: number;
  readonly label: string;
  readonly percent: number;
}

/**
 * The steps every stack image goes through. debootstrap's own phases come first (its `I:` lines say
 * which one it is in); the last two are Slipway's (CA bundle, user, stripping; then podman import or
 * moving the run tree into place).
 */
export const STACK_STEPS = [
  "downloading package lists",
  "resolving dependencies",
  "downloading packages",
  "extracting packages",
  "installing packages",
  "preparing the image",
  "saving the image",
] as const;
export type StackStepLabel = (typeof STACK_STEPS)[number];

/** debootstrap's phase lines, in the order it prints them, and the step each one starts. */
const PHASES: readonly [RegExp, StackStepLabel][] = [
  [/^Retrieving (InRelease|Release|Packages)\b/, "downloading package lists"],
  [/^Resolving dependencies\b/, "resolving dependencies"],
  [/^Retrieving \S+ \S+$/, "downloading packages"],
  [/^Extracting \S+\.\.\.$/, "extracting packages"],
  [/^(Installing|Unpacking|Configuring) (core|required|the base system|base)\b/, "installing packages"],
];

/** Lines that each stand for one package, so a step with a known package count can show a fraction. */
const PACKAGE_LINE = /^(Retrieving \S+ \S+|Extracting \S+\.\.\.|Unpacking \S+\.\.\.|Configuring \S+\.\.\.)$/;

/**
 * Turns debootstrap's output into steps. `onStep` is called when a step starts and, inside the
 * steps that go package by package, each time another tenth of the packages is done, so a terminal
 * shows a line every few seconds rather than hundreds (one per package) or none for minutes.
 */
export class StackProgress {
  private step = 0;
  private packages = 0;
  /** Packages seen in the current step, and the last tenth reported for it. */
  private done = 0;
  private reportedTenth = 0;

  constructor(
    private readonly image: StackImage,
    private readonly onStep: (step: StackStep) => void,
  ) {}

  /** Feeds one line of debootstrap's output. */
  line(raw: string): void {
    if (!raw.startsWith("I: ")) return;
    const text = raw.slice(3).trim();
    for (const [pattern, label] of PHASES) {
      if (pattern.test(text)) this.enter(label);
    }
    if (!PACKAGE_LINE.test(text)) return;
    this.done++;
    // The download step is where the package count is learnt; later steps go through the same packages.
    if (STACK_STEPS[this.step - 1] === "downloading packages") {
      this.packages = this.done;
      return;
    }
    // Installing unpacks, then configures, each package: two lines apiece.
    const expected = this.packages * (STACK_STEPS[this.step - 1] === "installing packages" ? 2 : 1);
    const tenth = expected > 0 ? Math.min(9, Math.floor((this.done / expected) * 10)) : 0;
    if (tenth > this.reportedTenth) {
      this.reportedTenth = tenth;
      this.report(tenth / 10);
    }
  }

  /** Starts one of the steps after debootstrap (the adapter does those itself). */
  enter(label: StackStepLabel): void {
    const step = STACK_STEPS.indexOf(label) + 1;
    // Only forward: debootstrap repeats phases ("Unpacking required", then "Unpacking the base system").
    if (step <= this.step) return;
    this.step = step;
    this.done = 0;
    this.reportedTenth = 0;
    this.report(0);
  }

  private report(fraction: number): void {
    const total = STACK_STEPS.length;
    this.onStep({
      image: this.image,
      step: this.step,
      total,
      label: STACK_STEPS[this.step - 1] ?? "",
      percent: Math.round(((this.step - 1 + fraction) / total) * 100),
    });
  }
}

/** The line a person reads: "stack bookworm: build image, step 3 of 7: downloading packages (29%)". */
export function describeStep(suite: string, s: StackStep): string {
  return `stack ${suite}: ${s.image} image, step ${s.step} of ${s.total}: ${s.label} (${s.percent}%)`;
}
