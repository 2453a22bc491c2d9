"""Helpers of the apt buildpack: which Debian packages the app asks for, and where.

Sources, both read when present:
- `Aptfile`: one Debian package name per line; `#` starts a comment; blank lines are skipped.
- `project.toml`: `[com.heroku.buildpacks.deb-packages] install = ["pkg", { name = "pkg2" }]`
  (the format of Heroku's deb-packages buildpack; keys other than `name` are ignored with a warning).

Usage (run in the app directory):
  apt.py detect                          exit 0 when there is something to read, 100 otherwise
  apt.py list                            print "name<TAB>where" lines (first mention of a name wins)
  apt.py check --cache DIR --mirror URL  read `list` output on stdin; fail naming each unknown package
  apt.py toml-get FILE KEY               print [metadata] KEY of a layer toml ("" when absent)
  apt.py layer-toml KEY MIRROR INSTALLED print the packages layer's toml
Messages go to stderr; exit 1 with a message naming the file and line on bad input.
"""
import argparse
import json
import os
import re
import sys
import tomllib

# Debian Policy §5.6.1: lower case letters, digits, + - . ; at least two characters, starting alphanumeric.
NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
APTFILE = "Aptfile"
PROJECT = "project.toml"
TABLE = ("com", "heroku", "buildpacks", "deb-packages")
TABLE_NAME = "[com.heroku.buildpacks.deb-packages]"


class Failure(Exception):
    pass


def deb_table(doc):
    t = doc
    for key in TABLE:
        t = t.get(key) if isinstance(t, dict) else None
    return t


def load_project():
    if not os.path.isfile(PROJECT):
        return None, ""
    with open(PROJECT, "rb") as f:
        raw = f.read()
    try:
        return tomllib.loads(raw.decode("utf-8")), raw.decode("utf-8")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise Failure(f"{PROJECT} is not valid TOML: {error}") from error


def check_name(name, where):
    if not NAME.fullmatch(name):
        raise Failure(
            f"{where}: {name!r} is not a Debian package name (lower case letters, digits, '+', '-', '.'; "
            "at least two characters, starting with a letter or digit)"
        )


def line_of(text, name):
    """The line of project.toml naming the package, for messages (1-based; 0 when not found)."""
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if "deb-packages" in l), 0)
    pattern = re.compile(r"""["']""" + re.escape(name) + r"""["']""")
    for i in list(range(start, len(lines))) + list(range(0, start)):
        if pattern.search(lines[i]):
            return i + 1
    return 0


def wanted():
    """[(name, where)] in file order, each name once."""
    out, seen = [], set()

    def add(name, where):
        check_name(name, where)
        if name not in seen:
            seen.add(name)
            out.append((name, where))

    if os.path.isfile(APTFILE):
        with open(APTFILE, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                text = line.split("#", 1)[0].strip()
                if not text:
                    continue
                if text.startswith(":repo:"):
                    raise Failure(
                        f"{APTFILE} line {n}: custom repositories (:repo:) are not supported; packages come from "
                        "the platform's Debian mirror only"
                    )
                if re.match(r"^[a-z]+://", text) or text.endswith(".deb"):
                    raise Failure(f"{APTFILE} line {n}: .deb files and URLs are not supported; name a Debian package")
                words = text.split()
                if len(words) > 1:
                    raise Failure(f"{APTFILE} line {n}: one Debian package name per line (got {text!r})")
                add(words[0], f"{APTFILE} line {n}")
    doc, text = load_project()
    table = deb_table(doc) if doc is not None else None
    if table is not None:
        if not isinstance(table, dict):
            raise Failure(f"{PROJECT}: {TABLE_NAME} must be a table")
        install = table.get("install", [])
        if not isinstance(install, list):
            raise Failure(f"{PROJECT}: {TABLE_NAME} install must be an array of package names or tables with a name")
        for i, item in enumerate(install):
            field = f"{TABLE_NAME} install[{i}]"
            if isinstance(item, dict):
                name = item.get("name")
                extra = sorted(set(item) - {"name"})
                if extra and isinstance(name, str):
                    print(f"warning: {PROJECT} {field} ({name}): {', '.join(extra)} not supported here, ignored", file=sys.stderr)
            else:
                name = item
            if not isinstance(name, str):
                raise Failure(f"{PROJECT}: {field} must be a package name or a table with name = \"<package>\"")
            line = line_of(text, name)
            add(name, f"{PROJECT} line {line} ({field})" if line else f"{PROJECT} {field}")
    return out


def detect():
    found = []
    if os.path.isfile(APTFILE):
        found.append(APTFILE)
    try:
        doc, _ = load_project()
    except Failure:
        doc = None  # the platform reports an invalid project.toml itself
    if doc is not None and deb_table(doc) is not None:
        found.append(f"{PROJECT} {TABLE_NAME}")
    if not found:
        print(f"looks for an Aptfile or a {PROJECT} with {TABLE_NAME} at the repository root: none found")
        sys.exit(100)
    print(f"Debian packages listed in {' and '.join(found)}")


def check(cache, mirror):
    """Every name must be a package of the mirror's index, or one a package there provides."""
    sys.path.insert(0, "/cnb/lib")
    import debs  # noqa: E402  (mounted at /cnb/lib by the platform)

    suite = debs.stack_suite()
    args = argparse.Namespace(cache=cache, mirror=mirror, suite=[suite], max_age=86400)
    try:
        index = debs.load_index(args)
    except debs.Failure as error:
        raise Failure(str(error)) from error
    provided = debs.providers(index)
    unknown = []
    for line in sys.stdin.read().splitlines():
        if not line.strip():
            continue
        name, _, where = line.partition("\t")
        if name not in index and name not in provided:
            unknown.append(f"{where}: Debian package {name!r} does not exist in Debian {suite} ({mirror})")
    if unknown:
        raise Failure("\n".join(unknown) + f"\nCheck the spelling (https://packages.debian.org/{suite}/<name>) and push again.")


def toml_get(path, key):
    try:
        with open(path, "rb") as f:
            value = tomllib.load(f).get("metadata", {}).get(key, "")
    except (OSError, tomllib.TOMLDecodeError):
        value = ""
    print(value if isinstance(value, str) else "")


def main():
    argv = sys.argv[1:]
    command = argv[0] if argv else ""
    try:
        if command == "detect":
            detect()
        elif command == "list":
            for name, where in wanted():
                print(f"{name}\t{where}")
        elif command == "check":
            parser = argparse.ArgumentParser()
            parser.add_argument("--cache", required=True)
            parser.add_argument("--mirror", required=True)
            opts = parser.parse_args(argv[1:])
            check(opts.cache, opts.mirror.rstrip("/"))
        elif command == "toml-get":
            toml_get(argv[1], argv[2])
        elif command == "layer-toml":
            key, mirror, installed = argv[1:4]
            print("[types]\nlaunch = true\nbuild = true\ncache = true\n\n[metadata]")
            for k, v in (("key", key), ("mirror", mirror), ("installed", installed)):
                print(f"{k} = {json.dumps(v)}")
        else:
            raise Failure(f"unknown command {command!r}")
    except Failure as error:
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
