"""Procfile -> launch.toml, following heroku/procfile (Buildpack API 0.10).

Each `<type>: <command>` line becomes a process `command = ["bash", "-c"]`, `args = [<command>]`.
Types are lowercased (`_` becomes `-`); a later duplicate wins; `web`, or the only process, is the
default. Blank lines and `#` comments are skipped; anything else is an error naming the line.
Usage: procfile.py <Procfile>  (launch.toml on stdout, messages on stderr, exit 1 on a bad Procfile)
"""
import json
import re
import sys

LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")
TYPE = re.compile(r"^[a-z0-9-]{1,63}$")


def parse(text):
    """Returns ({type: command}, [error messages])."""
    processes, errors = {}, []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            errors.append(f"Procfile line {number}: expected '<process type>: <command>', found {raw.strip()!r}")
            continue
        name = m.group(1).lower().replace("_", "-")
        if name != m.group(1):
            print(f"Procfile line {number}: process type {m.group(1)!r} is used as {name!r}", file=sys.stderr)
        if not TYPE.match(name):
            errors.append(f"Procfile line {number}: process type {name!r} must be 1 to 63 characters of a-z, 0-9 and '-'")
            continue
        processes.pop(name, None)
        processes[name] = m.group(2).strip()
    return processes, errors


def toml_string(value):
    # JSON string escapes are valid TOML basic-string escapes once DEL, which TOML forbids raw, is escaped.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def launch_toml(processes):
    out = []
    for name, command in processes.items():
        default = name == "web" or len(processes) == 1
        out.append(
            "[[processes]]\n"
            f"type = {toml_string(name)}\n"
            'command = ["bash", "-c"]\n'
            f"args = [{toml_string(command)}]\n"
            f"default = {'true' if default else 'false'}\n"
        )
    return "\n".join(out)


def main():
    path = sys.argv[1]
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        print(f"Procfile is not UTF-8 text: {e}", file=sys.stderr)
        sys.exit(1)
    processes, errors = parse(text)
    if errors:
        for e in errors:
            print(e, file=sys.stderr)
        print("Each Procfile line must look like 'web: node server.js'.", file=sys.stderr)
        sys.exit(1)
    if not processes:
        print("warning: the Procfile defines no processes", file=sys.stderr)
    for name, command in processes.items():
        print(f"Procfile process {name}: {command}", file=sys.stderr)
    sys.stdout.write(launch_toml(processes))


if __name__ == "__main__":
    main()
