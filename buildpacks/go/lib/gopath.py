"""GOPATH-style Go apps (no go.mod): where their import path comes from.

Usage: gopath.py import-path    prints "<import path> <where it came from>"

The import path is, in this order: BP_GO_BUILD_IMPORT_PATH (Paketo), Godeps/Godeps.json's ImportPath
(godep, Heroku), vendor/vendor.json's rootPath (govendor), glide.yaml's `package:` (glide), else
"app" for a plain main package that imports nothing of its own.
"""
import json
import os
import re
import sys

VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*(/[A-Za-z0-9._~-]+)*$")


def from_files():
    value = os.environ.get("BP_GO_BUILD_IMPORT_PATH", "").strip()
    if value:
        return value, "BP_GO_BUILD_IMPORT_PATH"
    for file, key in (("Godeps/Godeps.json", "ImportPath"), ("vendor/vendor.json", "rootPath")):
        if os.path.isfile(file):
            try:
                with open(file, encoding="utf-8") as f:
                    doc = json.load(f)
            except (OSError, ValueError) as e:
                fail(f"{file} is not valid JSON ({e}); fix it, or set BP_GO_BUILD_IMPORT_PATH in project.toml")
            value = doc.get(key) if isinstance(doc, dict) else None
            if isinstance(value, str) and value.strip():
                return value.strip(), f"{file} {key}"
            fail(f'{file} has no "{key}"; add it (the app\'s import path), or set BP_GO_BUILD_IMPORT_PATH in project.toml')
    if os.path.isfile("glide.yaml"):
        with open("glide.yaml", encoding="utf-8") as f:
            for line in f:
                m = re.match(r"^package:\s*['\"]?([^'\"#\s]+)", line)
                if m:
                    return m.group(1), "glide.yaml package"
        fail("glide.yaml has no 'package:' line; add the app's import path there, or set BP_GO_BUILD_IMPORT_PATH in project.toml")
    return "app", "no Godeps/Godeps.json, vendor/vendor.json or glide.yaml: a plain main package"


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    if sys.argv[1:] != ["import-path"]:
        fail("usage: gopath.py import-path")
    value, source = from_files()
    value = value.strip("/")
    if not VALID.match(value) or ".." in value.split("/"):
        fail(f"the import path {value!r} (from {source}) is not a Go import path like github.com/owner/app; fix it")
    print(value, source)


if __name__ == "__main__":
    main()
