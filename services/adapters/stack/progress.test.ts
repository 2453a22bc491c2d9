import { describe, expect, it } from "vitest";
import { StackProgress, describeStep, type StackStep } from "./progress.js";

// debootstrap's output for a three-package minbase (the real one has about a hundred packages).
const DEBOOTSTRAP = [
  "I: Target architecture can be executed",
  "I: Retrieving InRelease ",
  "I: Checking Release signature",
  "I: Valid Release signature (key id 4D64FEC119C2029067D6E791F8D2585B8783D481)",
  "I: Retrieving Packages ",
  "I: Validating Packages ",
  "I: Resolving dependencies of required packages...",
  "I: Resolving dependencies of base packages...",
  "I: Checking component main on http://deb.debian.org/debian...",
  "I: Retrieving adduser 3.134",
  "I: Validating adduser 3.134",
  "I: Retrieving base-files 12.4+deb12u8",
  "I: Validating base-files 12.4+deb12u8",
  "I: Retrieving python3 3.11.2-1+b1",
  "I: Validating python3 3.11.2-1+b1",
  "I: Chosen extractor for .deb packages: dpkg-deb",
  "I: Extracting adduser...",
  "I: Extracting base-files...",
  "I: Extracting python3...",
  "I: Installing core packages...",
  "I: Unpacking required packages...",
  "I: Unpacking adduser...",
  "I: Unpacking base-files...",
  "I: Configuring required packages...",
  "I: Configuring adduser...",
  "I: Configuring base-files...",
  "I: Unpacking the base system...",
  "I: Unpacking python3...",
  "I: Configuring the base system...",
  "I: Configuring python3...",
  "I: Base system installed successfully.",
];

function feed(lines: readonly string[]): StackStep[] {
  const steps: StackStep[] = [];
  const progress = new StackProgress("build", (s) => steps.push(s));
  for (const line of lines) progress.line(line);
  return steps;
}

describe("StackProgress", () => {
  it("turns debootstrap's phase lines into steps 1 to 5 of 7, each once, in order", () => {
    const steps = feed(DEBOOTSTRAP);
    const starts = steps.filter((s, i) => i === 0 || steps[i - 1]!.step !== s.step);
    expect(starts.map((s) => [s.step, s.label, s.percent])).toEqual([
      [1, "downloading package lists", 0],
      [2, "resolving dependencies", 14],
      [3, "downloading packages", 29],
      [4, "extracting packages", 43],
      [5, "installing packages", 57],
    ]);
    expect(steps.every((s) => s.total === 7 && s.image === "build")).toBe(true);
  });

  it("reports fractions inside the package-by-package steps, never going backwards", () => {
    const steps = feed(DEBOOTSTRAP);
    const extracting = steps.filter((s) => s.step === 4).map((s) => s.percent);
    // 3 packages: a third, two thirds, then all (shown as nine tenths: the step is not over until the next).
    expect(extracting).toEqual([43, 47, 51, 56]);
    const percents = steps.map((s) => s.percent);
    expect(percents).toEqual([...percents].sort((a, b) => a - b));
  });

  it("ignores lines that are not debootstrap's information lines", () => {
    expect(feed(["W: Cannot check Release signature", "dpkg: warning: something", ""])).toEqual([]);
  });

  it("takes the adapter's own steps after debootstrap's, and not a step twice", () => {
    const steps: StackStep[] = [];
    const progress = new StackProgress("run", (s) => steps.push(s));
    progress.enter("preparing the image");
    progress.enter("preparing the image");
    progress.enter("saving the image");
    expect(steps.map((s) => describeStep("bookworm", s))).toEqual([
      "stack bookworm: run image, step 6 of 7: preparing the image (71%)",
      "stack bookworm: run image, step 7 of 7: saving the image (86%)",
    ]);
  });
});
