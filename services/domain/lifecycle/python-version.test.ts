import { describe, expect, it } from "vitest";
import { chooseSuite, pythonRequest } from "./python-version.js";

const SUITES = [
  { suite: "bookworm", python: "3.11" },
  { suite: "trixie", python: "3.13" },
];

const suiteFor = (files: Parameters<typeof pythonRequest>[0], env: Record<string, string> = {}) => {
  const request = pythonRequest(files, env);
  return request ? chooseSuite(request, SUITES).suite : undefined;
};

describe("the Python an app asks for", () => {
  it("picks trixie for 3.13 from each source, and bookworm for 3.11", () => {
    expect(suiteFor({ pythonVersion: "3.13\n" })).toBe("trixie");
    expect(suiteFor({ pythonVersion: "# pinned\n3.13.1\n" })).toBe("trixie");
    expect(suiteFor({ runtimeTxt: "python-3.13.2\n" })).toBe("trixie");
    expect(suiteFor({ pyproject: '[project]\nname = "x"\nrequires-python = ">=3.12"\n' })).toBe("trixie");
    expect(suiteFor({ pythonVersion: "3.11" })).toBe("bookworm");
    expect(suiteFor({ pyproject: '[project]\nrequires-python = ">=3.9,<3.13"\n' })).toBe("bookworm");
  });

  it("keeps the default stack when nothing asks, or when the default satisfies the request", () => {
    expect(suiteFor({})).toBeUndefined();
    expect(suiteFor({ pyproject: '[project]\nname = "x"\n' })).toBeUndefined();
    expect(suiteFor({ pyproject: '[project]\nrequires-python = ">=3.8"\n' })).toBe("bookworm");
    expect(suiteFor({ pyproject: '[project]\nrequires-python = "~=3.10"\n' })).toBe("bookworm");
  });

  it("follows BP_CPYTHON_VERSION > .python-version > runtime.txt > requires-python", () => {
    const all = {
      pythonVersion: "3.11",
      runtimeTxt: "python-3.13.0",
      pyproject: '[project]\nrequires-python = ">=3.13"\n',
    };
    expect(suiteFor(all, { BP_CPYTHON_VERSION: "3.13.*" })).toBe("trixie");
    expect(suiteFor(all)).toBe("bookworm");
    expect(suiteFor({ ...all, pythonVersion: undefined })).toBe("trixie");
    expect(suiteFor({ pyproject: all.pyproject, runtimeTxt: "python-3.11.9" })).toBe("bookworm");
  });

  it("refuses a version no stack has, first line naming what to change and what exists", () => {
    expect(() => suiteFor({ pythonVersion: "3.12\n" })).toThrow(
      /^\.python-version asks for Python 3\.12, which Slipway does not have: change \.python-version to 3\.11 or 3\.13\.\nAvailable: Python 3\.11 \(Debian bookworm\), Python 3\.13 \(Debian trixie\)/,
    );
    expect(() => suiteFor({}, { BP_CPYTHON_VERSION: "3.10" })).toThrow(
      /^BP_CPYTHON_VERSION asks for Python 3\.10, .*change BP_CPYTHON_VERSION to 3\.11 or 3\.13/,
    );
    expect(() => suiteFor({ pyproject: '[project]\nrequires-python = ">=3.14"\n' })).toThrow(
      /^pyproject\.toml requires-python asks for Python >=3\.14, .*change requires-python in pyproject\.toml/,
    );
  });

  it("with one stack (a cluster's), names its one version", () => {
    const request = pythonRequest({ pythonVersion: "3.13\n" }, {})!;
    expect(() => chooseSuite(request, SUITES.slice(0, 1))).toThrow(
      /^\.python-version asks for Python 3\.13, which Slipway does not have: change \.python-version to 3\.11\.\nAvailable: Python 3\.11 \(Debian bookworm\);/,
    );
  });

  it("refuses what is not a version, naming the file and an example", () => {
    expect(() => suiteFor({ runtimeTxt: "ruby-3.2" })).toThrow(
      /^runtime\.txt: "ruby-3\.2" is not a Python version; write a version such as python-3\.13\.1/,
    );
    expect(() => suiteFor({ pythonVersion: "pypy3.10" })).toThrow(/^\.python-version: "pypy3\.10"/);
    expect(() => suiteFor({ pyproject: '[project]\nrequires-python = "3.11+"\n' })).toThrow(
      /^pyproject\.toml requires-python: "3\.11\+" is not a version specifier/,
    );
  });
});
