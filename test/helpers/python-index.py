"""Builds py3-none-any wheels from Debian trixie's packaged Python libraries (no PyPI here): each
.deb is unpacked by buildpacks/lib/debs.py, and its dist-packages tree plus .dist-info become a wheel.

Usage: python-index.py OUT_DIR CACHE_DIR PACKAGE...   (Debian package names, e.g. python3-flask)
"""
import base64
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile

DEBS = os.path.join(os.path.dirname(__file__), "..", "..", "buildpacks", "lib", "debs.py")


def debs(*args):
    cmd = [sys.executable, DEBS, *args, "--suite", "trixie", "--base", "ca-certificates python3"]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def wheel(site, out):
    for egg in [d for d in os.listdir(site) if d.endswith(".egg-info")]:
        # Older Debian packages ship egg-info: PKG-INFO is the same format as a wheel's METADATA.
        base = re.sub(r"\.egg-info$", "", egg).split("-py")[0]
        dist = os.path.join(site, base + ".dist-info")
        os.rename(os.path.join(site, egg), dist)
        os.rename(os.path.join(dist, "PKG-INFO"), os.path.join(dist, "METADATA"))
    infos = [d for d in os.listdir(site) if d.endswith(".dist-info")]
    if not infos:
        raise SystemExit(f"no .dist-info in {site}")
    info = infos[0]
    name, version = info[: -len(".dist-info")].rsplit("-", 1)
    name = re.sub(r"[-_.]+", "_", name)
    path = os.path.join(out, f"{name}-{version}-py3-none-any.whl")
    with open(os.path.join(site, info, "WHEEL"), "w") as f:
        f.write("Wheel-Version: 1.0\nGenerator: slipway-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    record, files = [], []
    for root, dirs, names in os.walk(site):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for n in names:
            full = os.path.join(root, n)
            rel = os.path.relpath(full, site)
            if n in ("RECORD", "INSTALLER", "direct_url.json"):
                continue
            files.append((full, rel))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for full, rel in sorted(files, key=lambda f: f[1]):
            data = open(full, "rb").read()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{rel},sha256={digest},{len(data)}")
            z.writestr(rel, data)
        record.append(f"{info}/RECORD,,")
        z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def main():
    out, cache, packages = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(out, exist_ok=True)
    names = [line.split()[0] for line in debs("resolve", "--cache", cache, *packages).splitlines() if line]
    for name in names:
        others = [n for n in names if n != name]
        with tempfile.TemporaryDirectory() as dest:
            debs("install", "--cache", cache, "--dest", dest, "--skip", " ".join(others) or "none", name)
            site = os.path.join(dest, "usr", "lib", "python3", "dist-packages")
            print(wheel(site, out))


if __name__ == "__main__":
    main()
