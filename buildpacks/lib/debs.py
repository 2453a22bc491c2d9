"""Installs Debian packages into a buildpack layer without apt: the mirror's Packages index, a
dependency closure, .deb downloads checked against the index's SHA256, and `dpkg-deb -x`.

Shared by the php and go buildpacks (a byte-identical copy lives in each one's lib/, since each
buildpack is mounted on its own) and meant for the future apt buildpack. Maintainer scripts are not
run, so a package that needs its postinst to work must be completed by the calling buildpack.

Usage:
  debs.py index   --cache DIR [--mirror URL] [--suite S]...          refresh (or reuse) the index
  debs.py resolve --cache DIR [--suite S]... [--base P]... PKG...   print "name version" lines
  debs.py install --cache DIR [--suite S]... [--base P]... [--skip P]... --dest DIR PKG...
  debs.py newest  --cache DIR [--suite S]... REGEX                  packages matching, newest first
  debs.py has     --cache DIR [--suite S]... PKG                    exit 0 if PKG is in the index

Without --suite, the suite is the build image's own Debian release (VERSION_CODENAME in
/etc/os-release): the packages must fit the run image, which is made from the same release.

The parsed index is kept as JSON in the cache dir (`index-<suite>.json`) and refreshed after
--max-age seconds (default a day) or when a download returns 404 (a point release moved the pool).
`--base` names packages the run image already has: they and their dependencies are not installed,
and neither are Essential or Priority: required packages (every debootstrap minbase image has those).
`--skip` names packages not to install although something depends on them (tools only a
maintainer script would use, like ucf).
Messages go to stderr; exit 1 with a message naming the package on failure.
"""
import argparse
import concurrent.futures
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ARCH = "amd64"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
KEEP = ("Package", "Version", "Depends", "Pre-Depends", "Provides", "Filename", "SHA256", "Size", "Priority", "Essential")


class Failure(Exception):
    pass


def stack_suite(os_release="/etc/os-release"):
    """The Debian release of the image this runs in (the stack's suite); bookworm when unknown."""
    try:
        with open(os_release, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "VERSION_CODENAME" and value.strip('"'):
                    return value.strip('"')
    except OSError:
        pass
    return "bookworm"


def log(message):
    print(message, file=sys.stderr, flush=True)


def fetch(url, attempts=3):
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=60) as res:
                return res.read()
        except urllib.error.HTTPError as error:
            if error.code == 404 or attempt == attempts - 1:
                raise
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            if attempt == attempts - 1:
                raise Failure(f"cannot reach the Debian mirror at {url}: {error}") from error
        time.sleep(1 + attempt)
    raise Failure(f"cannot fetch {url}")


def parse_packages(text):
    """Packages index text -> {name: fields}; the highest version of a name wins."""
    out = {}
    for stanza in text.split("\n\n"):
        fields, key = {}, None
        for line in stanza.splitlines():
            if line.startswith((" ", "\t")):
                continue  # continuation lines (descriptions) are not needed
            key, _, value = line.partition(":")
            if key in KEEP:
                fields[key] = value.strip()
        name = fields.get("Package")
        if not name:
            continue
        old = out.get(name)
        if old is None or compare_versions(fields["Version"], old["Version"]) > 0:
            out[name] = fields
    return out


def load_index(args, refresh=False):
    """{name: fields} over all suites; a name in a later suite (backports) only adds, never replaces."""
    os.makedirs(args.cache, exist_ok=True)
    merged = {}
    for suite in args.suite:
        path = os.path.join(args.cache, f"index-{suite}.json")
        data = None
        if not refresh and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            if data.get("mirror") != args.mirror or time.time() - data.get("fetched_at", 0) > args.max_age:
                data = None
        if data is None:
            url = f"{args.mirror}/dists/{suite}/main/binary-{ARCH}/Packages.xz"
            log(f"Fetching the Debian package index {url}")
            try:
                text = lzma.decompress(fetch(url)).decode("utf-8", "replace")
            except urllib.error.HTTPError as error:
                raise Failure(f"the Debian mirror has no index at {url} (HTTP {error.code})") from error
            data = {"mirror": args.mirror, "suite": suite, "fetched_at": int(time.time()), "packages": parse_packages(text)}
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f, separators=(",", ":"))
            os.replace(tmp, path)
        for name, fields in data["packages"].items():
            fields = dict(fields, suite=suite)
            merged.setdefault(name, fields)
    return merged


# --- Debian version comparison (deb-version(7)) ---------------------------------------------------


def _order(c):
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_part(a, b):
    while a or b:
        na = re.match(r"^[^\d]*", a).group(0)
        nb = re.match(r"^[^\d]*", b).group(0)
        for i in range(max(len(na), len(nb))):
            ca = _order(na[i]) if i < len(na) else 0
            cb = _order(nb[i]) if i < len(nb) else 0
            if ca != cb:
                return -1 if ca < cb else 1
        a, b = a[len(na):], b[len(nb):]
        da = re.match(r"^\d*", a).group(0)
        db = re.match(r"^\d*", b).group(0)
        if int(da or 0) != int(db or 0):
            return -1 if int(da or 0) < int(db or 0) else 1
        a, b = a[len(da):], b[len(db):]
    return 0


def split_version(v):
    epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
    return int(epoch or 0), upstream, revision


def compare_versions(a, b):
    ea, ua, ra = split_version(a)
    eb, ub, rb = split_version(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


# --- dependency closure ---------------------------------------------------------------------------


def alternatives(field):
    """'a (>= 1) | b, c:any' -> [['a', 'b'], ['c']] (version constraints are not checked: one suite)."""
    out = []
    for group in filter(None, (g.strip() for g in (field or "").split(","))):
        out.append([re.split(r"[\s(:\[]", alt.strip(), maxsplit=1)[0] for alt in group.split("|")])
    return out


def providers(index):
    prov = {}
    for name, fields in index.items():
        for alt in alternatives(fields.get("Provides")):
            prov.setdefault(alt[0], []).append(name)
    return prov


def closure(index, prov, roots, skip=frozenset(), strict=True):
    """Names of the packages `roots` need, following Depends and Pre-Depends, minus `skip`."""
    chosen, todo = [], list(roots)
    seen = set()

    def pick(alts, wanted_by):
        for alt in alts:  # something already chosen or present satisfies it
            if alt in seen or alt in skip or any(p in seen or p in skip for p in prov.get(alt, [])):
                return None
        for alt in alts:
            if alt in index:
                return alt
            if prov.get(alt):
                return sorted(prov[alt])[0]
        if strict:
            raise Failure(f"{wanted_by} needs {' | '.join(alts)}, which this Debian mirror does not have")
        return None

    while todo:
        name = todo.pop(0)
        if name in seen or name in skip:
            continue
        if name not in index:
            if prov.get(name):
                name = sorted(prov[name])[0]
            elif strict:
                raise Failure(f"Debian package {name!r} is not in the index of this mirror")
            else:
                continue
        seen.add(name)
        chosen.append(name)
        fields = index[name]
        for alts in alternatives(fields.get("Pre-Depends")) + alternatives(fields.get("Depends")):
            dep = pick(alts, name)
            if dep:
                todo.append(dep)
    return chosen


def base_set(index, prov, base):
    required = {n for n, f in index.items() if f.get("Essential") == "yes" or f.get("Priority") == "required"}
    return set(closure(index, prov, sorted(required) + list(base), strict=False))


def resolve(args, index=None):
    """[(name, version)] of the closure, sorted. Remembered next to the index while the index is
    fresh, so a warm build neither parses the index nor walks its 60,000 packages."""
    stamps = index_stamps(args)
    key = hashlib.sha256(json.dumps([args.mirror, args.suite, sorted(args.packages), sorted(args.base),
                                     sorted(args.skip), stamps]).encode()).hexdigest()[:32]
    memo = os.path.join(args.cache, f"resolved-{key}.json")
    if stamps and os.path.exists(memo):
        with open(memo, encoding="utf-8") as f:
            return [tuple(item) for item in json.load(f)]
    if index is None:
        index = load_index(args)
        stamps = index_stamps(args)
        key = hashlib.sha256(json.dumps([args.mirror, args.suite, sorted(args.packages), sorted(args.base),
                                         sorted(args.skip), stamps]).encode()).hexdigest()[:32]
        memo = os.path.join(args.cache, f"resolved-{key}.json")
    resolved = [(name, index[name]["Version"]) for name in _resolve(index, args)]
    for old in os.listdir(args.cache):
        if old.startswith("resolved-") and os.path.getmtime(os.path.join(args.cache, old)) < time.time() - args.max_age:
            os.remove(os.path.join(args.cache, old))
    with open(memo, "w", encoding="utf-8") as f:
        json.dump(resolved, f)
    return resolved


def index_stamps(args):
    """Modification times of the cached index files, or None when one is missing or too old."""
    stamps = []
    for suite in args.suite:
        path = os.path.join(args.cache, f"index-{suite}.json")
        if not os.path.exists(path) or time.time() - os.path.getmtime(path) > args.max_age:
            return None
        stamps.append(int(os.path.getmtime(path)))
    return stamps


def _resolve(index, args):
    prov = providers(index)
    skip = base_set(index, prov, args.base) | set(args.skip)
    names = closure(index, prov, args.packages, skip=frozenset(skip))
    return sorted(names)


# --- install --------------------------------------------------------------------------------------


def download(args, fields, directory):
    url = f"{args.mirror}/{fields['Filename']}"
    data = fetch(url)
    if hashlib.sha256(data).hexdigest() != fields["SHA256"]:
        raise Failure(f"{url}: SHA256 does not match the Debian index")
    path = os.path.join(directory, os.path.basename(fields["Filename"]))
    with open(path, "wb") as f:
        f.write(data)
    return path


def install(args):
    index = load_index(args)
    names = [name for name, _ in resolve(args, index)]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            paths = fetch_all(args, index, names, tmp)
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise
            log("A package moved on the mirror (a point release): refreshing the index")
            index = load_index(args, refresh=True)
            names = [name for name, _ in resolve(args, index)]
            paths = fetch_all(args, index, names, tmp)
        os.makedirs(args.dest, exist_ok=True)
        for path in paths:
            subprocess.run(["dpkg-deb", "-x", path, args.dest], check=True)
    for name in names:
        print(f"{name} {index[name]['Version']}")


def fetch_all(args, index, names, directory):
    total = sum(int(index[n].get("Size", 0)) for n in names)
    log(f"Downloading {len(names)} Debian packages ({total / 1e6:.1f} MB): {' '.join(names)}")
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        return list(pool.map(lambda n: download(args, index[n], directory), names))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["index", "resolve", "install", "newest", "has"])
    parser.add_argument("--cache", required=True)
    parser.add_argument("--mirror", default=os.environ.get("SLIPWAY_DEBIAN_MIRROR") or DEFAULT_MIRROR)
    parser.add_argument("--suite", action="append")
    parser.add_argument("--base", action="append", default=[])
    parser.add_argument("--skip", action="append", default=[])
    parser.add_argument("--dest")
    parser.add_argument("--max-age", type=int, default=86400)
    parser.add_argument("packages", nargs="*")
    args = parser.parse_intermixed_args()
    args.mirror = args.mirror.rstrip("/")
    args.suite = args.suite or [stack_suite()]
    args.base = [b for item in args.base for b in item.split()]
    args.skip = [b for item in args.skip for b in item.split()]
    try:
        if args.command == "index":
            load_index(args)
        elif args.command == "resolve":
            for name, version in resolve(args):
                print(f"{name} {version}")
        elif args.command == "install":
            if not args.dest:
                raise Failure("install needs --dest")
            install(args)
        elif args.command == "newest":
            pattern = re.compile(args.packages[0])
            index = load_index(args)
            found = [n for n in index if pattern.fullmatch(n)]
            for name in sorted(found, key=lambda n: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", n)], reverse=True):
                print(f"{name} {index[name]['Version']} {index[name]['suite']}")
        elif args.command == "has":
            sys.exit(0 if args.packages and args.packages[0] in load_index(args) else 1)
    except Failure as error:
        log(f"error: {error}")
        sys.exit(1)


if __name__ == "__main__":
    main()
