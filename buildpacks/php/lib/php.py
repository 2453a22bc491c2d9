"""Helpers of the slipway/php buildpack.

  php.py composer composer.json        check it; print "packages <debian pkgs>", "extensions <ext>",
                                         "dependencies <vendor/pkg ...>", "php <constraint>" lines
  php.py configure LAYER               php.ini, conf.d (one file per installed extension, Debian's
                                         priorities), bin/php, router.php inside an unpacked php layer
  php.py toml-get FILE KEY             a [metadata] value of a layer toml, or empty
"""
import glob
import json
import os
import re
import sys
import tomllib

PHP = "8.2"
API = "20220829"
PLATFORM = re.compile(r"^(php(-64bit|-ipv6|-zts|-debug)?|hhvm|composer(-plugin-api|-runtime-api)?|ext-.+|lib-.+)$")
# Composer extension names -> the Debian package that has them, where the name differs.
EXT_PACKAGES = {
    "dom": "xml", "simplexml": "xml", "xmlreader": "xml", "xmlwriter": "xml", "xsl": "xml", "xml": "xml",
    "pdo_mysql": "mysql", "mysqli": "mysql", "mysqlnd": "mysql",
    "pdo_pgsql": "pgsql", "pgsql": "pgsql",
    "pdo_sqlite": "sqlite3", "sqlite3": "sqlite3",
    "redis": "php-redis", "apcu": "php-apcu", "memcached": "php-memcached", "imagick": "php-imagick",
    "igbinary": "php-igbinary", "msgpack": "php-msgpack", "yaml": "php-yaml", "mongodb": "php-mongodb",
}
# Compiled into php8.2-cli or shipped by php8.2-common/-opcache/-readline: nothing to install.
BUILTIN = {
    "core", "date", "filter", "hash", "json", "libxml", "openssl", "pcntl", "pcre", "random", "reflection",
    "session", "sodium", "spl", "standard", "zlib", "calendar", "ctype", "exif", "ffi", "fileinfo", "ftp",
    "gettext", "iconv", "pdo", "phar", "posix", "shmop", "sockets", "sysvmsg", "sysvsem", "sysvshm",
    "tokenizer", "opcache", "zend-opcache", "readline",
}


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def composer(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except json.JSONDecodeError as error:
        fail(f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}. Fix it and push again.")
    if not isinstance(doc, dict):
        fail(f"{path} must hold a JSON object")
    require = doc.get("require") or {}
    if not isinstance(require, dict):
        fail(f'{path}: "require" must be an object of package names and version constraints')
    packages, extensions, dependencies = [], [], []
    for name in require:
        low = name.lower()
        if low.startswith("ext-"):
            ext = low[4:].replace("-", "_")
            extensions.append(ext)
            if ext in BUILTIN:
                continue
            pkg = EXT_PACKAGES.get(ext, ext)
            packages.append(pkg if pkg.startswith("php-") else f"php{PHP}-{pkg}")
        elif not PLATFORM.match(low):
            dependencies.append(name)
    print("packages " + " ".join(sorted(set(packages))))
    print("extensions " + " ".join(sorted(set(extensions))))
    print("dependencies " + " ".join(dependencies))
    print("php " + str(require.get("php", "")))


ROUTER = r"""<?php
// slipway/php: the built-in server must not hand out the repository's own files.
$path = rawurldecode(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) ?? '/');
foreach (explode('/', $path) as $segment) {
    if ($segment !== '' && $segment[0] === '.') { http_response_code(404); echo "Not Found\n"; return true; }
}
if (preg_match('#^/(vendor(/|$)|composer\.(json|lock)$|Procfile$)#', $path)) {
    http_response_code(404); echo "Not Found\n"; return true;
}
return false;
"""


def configure(layer):
    ext_dir = f"{layer}/usr/lib/php/{API}"
    etc = f"{layer}/etc/php-slipway"
    confd = f"{etc}/conf.d"
    os.makedirs(confd, exist_ok=True)
    for old in glob.glob(f"{confd}/*.ini"):
        os.remove(old)
    with open(f"{layer}/usr/lib/php/{PHP}/php.ini-production", encoding="utf-8") as f:
        ini = f.read()
    ini += (
        "\n; --- slipway/php ---\n"
        f'extension_dir = "{ext_dir}"\n'
        "date.timezone = UTC\n"
        "expose_php = Off\n"
        "variables_order = \"EGPCS\"\n"
        "log_errors = On\n"
        "error_log = /dev/stderr\n"
    )
    with open(f"{etc}/php.ini", "w", encoding="utf-8") as f:
        f.write(ini)
    # Debian's postinst (phpenmod) would link mods-available/*.ini into conf.d with these priorities.
    count = 0
    for src in sorted(glob.glob(f"{layer}/usr/share/php{PHP}-*/*/*.ini") + glob.glob(f"{layer}/usr/share/php-*/*/*.ini")):
        with open(src, encoding="utf-8") as f:
            text = f.read()
        m = re.search(r"priority=(\d+)", text)
        name = os.path.basename(src)
        module = re.search(r"^\s*(?:zend_)?extension\s*=\s*(\S+?)(?:\.so)?\s*$", text, re.M)
        if module and not os.path.exists(f"{ext_dir}/{module.group(1)}.so"):
            continue
        with open(f"{confd}/{m.group(1) if m else '20'}-{name}", "w", encoding="utf-8") as f:
            f.write(text)
        count += 1
    os.makedirs(f"{layer}/bin", exist_ok=True)
    for tool in ("php", "phar"):
        link = f"{layer}/bin/{tool}"
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(f"../usr/bin/{tool}{PHP}", link)
    with open(f"{layer}/router.php", "w", encoding="utf-8") as f:
        f.write(ROUTER)
    print(f"{count} extension ini files in {confd}")


def toml_get(path, key):
    try:
        with open(path, "rb") as f:
            print(tomllib.load(f).get("metadata", {}).get(key, ""))
    except (OSError, tomllib.TOMLDecodeError):
        print("")


def main():
    cmd = sys.argv[1]
    if cmd == "composer":
        composer(sys.argv[2])
    elif cmd == "configure":
        configure(sys.argv[2])
    elif cmd == "toml-get":
        toml_get(sys.argv[2], sys.argv[3])
    else:
        fail(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
