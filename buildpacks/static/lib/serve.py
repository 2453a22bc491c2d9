"""A small static file server for slipway/static (standard library only; runs on the run image's python3).

Usage: serve.py [--push-state] [ROOT]   (listens on 0.0.0.0:$PORT, default 8080)

- GET and HEAD only (405 otherwise); no directory listings: a directory serves its index.html or 404.
- `/dir` redirects to `/dir/` when dir has an index.html.
- Paths are decoded once, must stay inside ROOT after resolving symlinks, and may not name hidden
  files (`.git`, `.env`, ...): anything else is 404.
- MIME types from a fixed table (the system's mime.types may be missing), UTF-8 for text.
- HTML gets `Cache-Control: no-cache`; other files `public, max-age=3600`, or a year and immutable
  when the name carries a content hash (`app.3f9a1c2b.js`). ETag/Last-Modified with 304 replies.
- 404 serves ROOT/404.html if there is one, else a short built-in page. With --push-state
  (BP_WEB_SERVER_ENABLE_PUSH_STATE), a miss serves ROOT/index.html instead, for single-page apps that
  route in the browser.
"""
import email.utils
import http.server
import os
import posixpath
import re
import sys
import urllib.parse

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".xml": "application/xml",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".wasm": "application/wasm",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
}
HASHED = re.compile(r"[.-][0-9a-fA-F]{8,}\.[A-Za-z0-9]+$")
NOT_FOUND = b"<!doctype html><title>404 Not Found</title><h1>404 Not Found</h1>\n"


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "slipway-static"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    root = "."
    push_state = False

    def do_GET(self):
        self.serve(body=True)

    def do_HEAD(self):
        self.serve(body=False)

    def _method_not_allowed(self):
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")  # any request body is left unread
        self.close_connection = True
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed

    def resolve(self, url_path):
        """The file to serve for url_path, a redirect target, or None."""
        raw = urllib.parse.unquote(url_path, errors="strict")
        if "\x00" in raw or "\\" in raw:
            return None, None
        parts = [p for p in raw.split("/") if p]
        if any(p.startswith(".") for p in parts):  # hidden files, and "." / ".." segments
            return None, None
        candidate = os.path.join(self.root, *parts)
        real = os.path.realpath(candidate)
        if real != self.root and not real.startswith(self.root + os.sep):
            return None, None
        if os.path.isdir(real):
            index = os.path.join(real, "index.html")
            if not os.path.isfile(index):
                return None, None
            if not url_path.endswith("/"):
                return None, url_path + "/"
            return index, None
        if os.path.isfile(real):
            return real, None
        return None, None

    def serve(self, body):
        url = urllib.parse.urlsplit(self.path)
        try:
            file, redirect = self.resolve(url.path)
        except UnicodeDecodeError:
            file, redirect = None, None
        if redirect:
            location = redirect + ("?" + url.query if url.query else "")
            self.send_response(301)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if file is None and self.push_state and os.path.isfile(os.path.join(self.root, "index.html")):
            file = os.path.join(self.root, "index.html")
        if file is None:
            self.not_found(body)
            return
        try:
            f = open(file, "rb")
        except OSError:
            self.not_found(body)
            return
        with f:
            st = os.fstat(f.fileno())
            etag = '"%x-%x"' % (int(st.st_mtime), st.st_size)
            content_type = TYPES.get(posixpath.splitext(file)[1].lower(), "application/octet-stream")
            if content_type.startswith("text/html"):
                cache = "no-cache"
            elif HASHED.search(file):
                cache = "public, max-age=31536000, immutable"
            else:
                cache = "public, max-age=3600"
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Cache-Control", cache)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(st.st_size))
            self.send_header("Cache-Control", cache)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if body:
                while chunk := f.read(65536):
                    self.wfile.write(chunk)

    def not_found(self, body):
        page = os.path.join(self.root, "404.html")
        content = NOT_FOUND
        if os.path.isfile(page):
            with open(page, "rb") as f:
                content = f.read()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if body:
            self.wfile.write(content)

    def log_message(self, format, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), format % args))


def main():
    args = sys.argv[1:]
    if args[:1] == ["--push-state"]:
        Handler.push_state = True
        args = args[1:]
    Handler.root = os.path.realpath(args[0] if args else ".")
    port = int(os.environ.get("PORT") or 8080)
    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    print(f"serving {Handler.root} on port {port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
