import { describe, expect, it } from "vitest";
import { failureCause } from "./failure-cause.js";

// Outputs recorded from the real tools (npm 10.9, pip 23.2, Go 1.19 via the go buildpack, the php
// buildpack), as the failing buildpack's log tail holds them: the buildpack's own lines around them.
const lines = (text: string) => text.split("\n");

const NPM_BUILD = lines(`Using npm 10.9.9
Running npm run build

> shop@1.0.0 build
> node build.js

node:internal/modules/cjs/loader:1210
  throw err;
  ^

Error: Cannot find module './config.json'
Require stack:
- /workspace/build.js
    at Module._resolveFilename (node:internal/modules/cjs/loader:1207:15)
    at Module._load (node:internal/modules/cjs/loader:1038:27)
    at Module.require (node:internal/modules/cjs/loader:1289:19)
    at require (node:internal/modules/helpers:182:18)
    at Object.<anonymous> (/workspace/build.js:1:13)
    at Module._compile (node:internal/modules/cjs/loader:1521:14)
    at Module._extensions..js (node:internal/modules/cjs/loader:1623:10)
    at Module.load (node:internal/modules/cjs/loader:1266:32)
    at Module._load (node:internal/modules/cjs/loader:1091:12)
    at Function.executeUserEntryPoint [as runMain] (node:internal/modules/run_main:164:12) {
  code: 'MODULE_NOT_FOUND',
  requireStack: [ '/workspace/build.js' ]
}

Node.js v20.20.2
`);

const NPM_OFFLINE = lines(`Installing dependencies with npm ci --include=dev (package-lock.json)
npm error code ENOTFOUND
npm error syscall getaddrinfo
npm error errno ENOTFOUND
npm error network request to http://registry.invalid/npm failed, reason: getaddrinfo ENOTFOUND registry.invalid
npm error network This is a problem related to network connectivity.
npm error network In most cases you are behind a proxy or have bad network settings.
npm error network
npm error network If you are behind a proxy, please make sure that the 'proxy' config is set properly.  See: 'npm help config'
npm error A complete log of this run can be found in: /home/cnb/.npm/cache/_logs/2026-12-06T00_07_35_726Z-debug-0.log
`);

const PIP_INDEX = lines(`Creating a virtualenv with Python 3.11.2
Installing requirements.txt with pip
Looking in indexes: https://pypi.invalid/simple
Looking in links: /opt/wheels
WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f7c9b6c7f50>: Failed to establish a new connection: [Errno -2] Name or service not known')': /simple/flask/
WARNING: Retrying (Retry(total=3, connect=None, read=None, redirect=None, status=None)) after connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f7c9b6c8950>: Failed to establish a new connection: [Errno -2] Name or service not known')': /simple/flask/
WARNING: Retrying (Retry(total=2, connect=None, read=None, redirect=None, status=None)) after connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f7c9b6c9190>: Failed to establish a new connection: [Errno -2] Name or service not known')': /simple/flask/
WARNING: Retrying (Retry(total=1, connect=None, read=None, redirect=None, status=None)) after connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f7c9b6c9fd0>: Failed to establish a new connection: [Errno -2] Name or service not known')': /simple/flask/
WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f7c9b6ca650>: Failed to establish a new connection: [Errno -2] Name or service not known')': /simple/flask/
ERROR: Could not find a version that satisfies the requirement flask==3.0.0 (from versions: none)
ERROR: No matching distribution found for flask==3.0.0
`);

const PIP_GIT = lines(`Creating a virtualenv with Python 3.11.2
Installing requirements.txt with pip
Looking in indexes: https://pypi.org/simple, file:///opt/pypi/simple, file:///opt/pypi-more/simple
Looking in links: /opt/wheels
Collecting git+https://git.invalid/acme/lib.git (from -r r2.txt (line 1))
  Cloning https://git.invalid/acme/lib.git to /tmp/pip-req-build-up8iewop
  Running command git clone --filter=blob:none --quiet https://git.invalid/acme/lib.git /tmp/pip-req-build-up8iewop
  fatal: unable to access 'https://git.invalid/acme/lib.git/': Could not resolve host: git.invalid
  error: subprocess-exited-with-error
  
  × git clone --filter=blob:none --quiet https://git.invalid/acme/lib.git /tmp/pip-req-build-up8iewop did not run successfully.
  │ exit code: 128
  ╰─> See above for output.
  
  note: This error originates from a subprocess, and is likely not a problem with pip.
error: subprocess-exited-with-error

× git clone --filter=blob:none --quiet https://git.invalid/acme/lib.git /tmp/pip-req-build-up8iewop did not run successfully.
│ exit code: 128
╰─> See above for output.

note: This error originates from a subprocess, and is likely not a problem with pip.
`);

const GO_BUILD = lines(`Installing Go 1.19.8 from Debian (golang-1.19-go; go.mod asks for go 1.19)
Building example.com/broken -> bin/broken
# example.com/broken
./main.go:4:2: undefined: undefinedThing
error: go build of example.com/broken failed (above). Fix the errors and push again.`);

const PHP_JSON = lines(`-----> slipway/php 0.1.0
error: composer.json is not valid JSON: Expecting ',' delimiter at line 1, column 32. Fix it and push again.`);

describe("failureCause picks the line that says why, not the tool's epilogue", () => {
  it("npm run build: the Node.js exception, not a stack frame or the Node.js version", () => {
    expect(NPM_BUILD.at(-2)).toMatch(/^Node\.js v/);
    expect(failureCause(NPM_BUILD)).toBe("Error: Cannot find module './config.json'");
  });

  it("npm ci without the registry: the request that failed and why", () => {
    expect(failureCause(NPM_OFFLINE)).toBe(
      "npm error network request to http://registry.invalid/npm failed, reason: getaddrinfo ENOTFOUND registry.invalid",
    );
  });

  it("pip with an unreachable index: the connection failure, not 'No matching distribution'", () => {
    expect(failureCause(PIP_INDEX)).toBe(
      "Failed to establish a new connection: [Errno -2] Name or service not known (fetching /simple/flask/)",
    );
  });

  it("pip installing from git: git's 'Could not resolve host', not 'This error originates from a subprocess'", () => {
    expect(PIP_GIT.filter(Boolean).at(-1)).toMatch(/This error originates from a subprocess/);
    expect(failureCause(PIP_GIT)).toBe(
      "fatal: unable to access 'https://git.invalid/acme/lib.git/': Could not resolve host: git.invalid",
    );
  });

  it("go build: the compiler's file:line message rather than the buildpack's pointer to it", () => {
    expect(failureCause(GO_BUILD)).toBe("./main.go:4:2: undefined: undefinedThing");
  });

  it("php: the buildpack's own error line when no tool said more", () => {
    expect(failureCause(PHP_JSON)).toBe(
      "error: composer.json is not valid JSON: Expecting ',' delimiter at line 1, column 32. Fix it and push again.",
    );
  });

  it("falls back to the last line, cuts long lines, and has nothing to say about no output", () => {
    expect(failureCause(["Building", "something odd happened", ""])).toBe("something odd happened");
    expect(failureCause([`error: ${"x".repeat(400)}`])).toBe(`error: ${"x".repeat(293)}…`);
    expect(failureCause([])).toBeUndefined();
  });
});
