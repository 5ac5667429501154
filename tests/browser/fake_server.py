#!/usr/bin/env python3
"""A stand-in for logwisp's HTTP side, to test the browser page without the binary.

Serves the page (src/page/index.html) at PREFIX/ and PREFIX, with the headers and
Content-Security-Policy logwisp sends, and an SSE stream at PREFIX + STREAM_PATH that follows logwisp's wire contract closely enough for the page: `retry:`,
`event: connected`, entries as `id:` + `data:` JSON, the client filters of SPEC §14
(levels, filter, exclude, source; a bad regex is a 400 naming the parameter), and resume
after `Last-Event-ID` or `?last_event_id=N` (the header wins). Python's `re` stands in for
regex-lite: the same for the patterns the tests use.

Control endpoints for the driver (not part of logwisp):
  POST /_ctl/emit?source=app.log   body: lines, one entry each (level read from [LEVEL])
  POST /_ctl/kick                  ends every stream response (a network drop)
  GET  /_ctl/requests              JSON list of stream requests seen (target, header id)
  GET  /_ctl/last                  JSON {"id": last entry id}

Usage: fake_server.py [--port N] [--prefix /logs] [--stream-path /stream] [--page PATH];
prints "listening PORT".
"""

import argparse
import base64
import fnmatch
import hashlib
import json
import re
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

LEVEL_RE = re.compile(r"\[(ERROR|WARN|INFO|DEBUG|TRACE)\]|^(ERROR|WARN|INFO|DEBUG|TRACE):")


class Store:
    """Every entry ever emitted (tests are bounded), with a condition for live readers."""

    def __init__(self, first_id):
        self.entries = []  # (id, level, message, source, json_text)
        self.next_id = first_id
        self.cond = threading.Condition()
        self.kicks = 0
        self.requests = []

    def emit(self, lines, source):
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with self.cond:
            for line in lines:
                if not line:
                    continue
                fields = None
                stripped = line.strip()
                level = ""
                message = line
                if stripped.startswith("{") and stripped.endswith("}"):
                    try:
                        obj = json.loads(stripped)
                        level = str(obj.pop("level", ""))
                        message = str(obj.pop("message", obj.pop("msg", "")))
                        fields = obj or None
                    except ValueError:
                        pass
                if not level:
                    m = LEVEL_RE.search(line)
                    level = (m.group(1) or m.group(2)) if m else ""
                entry = {"time": now, "source": source, "level": level, "message": message}
                if fields:
                    entry["fields"] = fields
                self.entries.append((self.next_id, level, message, source, json.dumps(entry)))
                self.next_id += 1
            self.cond.notify_all()

    def after(self, last_id):
        # Ids are contiguous from the first: index arithmetic, not a scan.
        if not self.entries:
            return 0
        first = self.entries[0][0]
        return max(0, min(len(self.entries), last_id - first + 1))


class Filter:
    def __init__(self, query):
        self.levels = None
        self.filter = self.exclude = self.source = None
        levels = []
        seen = set()
        for name, value in query:
            if name == "levels":
                levels += [v.strip().upper() for v in value.split(",") if v.strip()]
            elif name in ("filter", "exclude", "source"):
                if name in seen:
                    raise ValueError(name, "given more than once")
                seen.add(name)
                if not value:
                    continue
                if name == "source":
                    self.source = value
                else:
                    try:
                        setattr(self, name, re.compile(value))
                    except re.error as e:
                        raise ValueError(name, f"`{value}` is not a valid regex: {e}")
        if levels:
            self.levels = set(levels)

    def matches(self, level, message, source):
        if self.levels is not None:
            if level == "":
                if "NONE" not in self.levels:
                    return False
            elif level.upper() not in self.levels:
                return False
        if self.source and not fnmatch.fnmatchcase(source, self.source):
            return False
        if self.filter and not self.filter.search(message):
            return False
        if self.exclude and self.exclude.search(message):
            return False
        return True


def page_and_policy(page_path, stream_path):
    """The page as logwisp serves it (page::stream_page_for) and the policy logwisp sends
    with it (page::PAGE_CSP, whose hashes a Rust test checks), so the browser runs the page
    under the same Content-Security-Policy."""
    html = Path(page_path).read_text(encoding="utf-8")
    html = html.replace(
        '<meta name="logwisp-stream" content="./stream">',
        f'<meta name="logwisp-stream" content=".{stream_path}">',
        1,
    )

    def digest(tag):
        text = re.search(rf"<{tag}>(.*?)</{tag}>", html, re.S).group(1)
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    csp = (
        f"default-src 'none'; script-src {digest('script')}; style-src {digest('style')}; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
    )
    return html.encode(), csp


def make_handler(store, prefix, page_path, configured_stream_path):
    stream_path = prefix + configured_stream_path
    page, csp = page_and_policy(page_path, configured_stream_path)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args):
            pass

        def send_json(self, status, obj):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            url = urlsplit(self.path)
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n).decode("utf-8", "replace")
            if url.path == "/_ctl/emit":
                q = dict(parse_qsl(url.query))
                store.emit(body.split("\n"), q.get("source", "app.log"))
                self.send_json(200, {"id": store.next_id - 1})
            elif url.path == "/_ctl/kick":
                with store.cond:
                    store.kicks += 1
                    store.cond.notify_all()
                self.send_json(200, {"kicks": store.kicks})
            else:
                self.send_json(404, {"error": "Not Found"})

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path == "/_ctl/requests":
                return self.send_json(200, store.requests)
            if url.path == "/_ctl/last":
                return self.send_json(200, {"id": store.next_id - 1})
            if url.path in (prefix + "/", prefix or "/"):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.send_header("Cache-Control", "no-cache")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Referrer-Policy", "no-referrer")
                self.send_header("Content-Security-Policy", csp)
                self.end_headers()
                self.wfile.write(page)
                return
            if url.path == stream_path:
                return self.stream(url)
            self.send_json(404, {"error": "Not Found", "message": url.path})

        def stream(self, url):
            query = parse_qsl(url.query, keep_blank_values=True)
            header_id = self.headers.get("Last-Event-ID")
            store.requests.append({"target": self.path, "last_event_id_header": header_id})
            try:
                flt = Filter(query)
            except ValueError as e:
                param, reason = e.args
                return self.send_json(
                    400,
                    {"error": "Bad Request", "message": f"query parameter `{param}`: {reason}"},
                )
            query_id = dict(query).get("last_event_id")
            resume = header_id if header_id is not None else query_id
            with store.cond:
                kicks = store.kicks
                pos = store.after(int(resume)) if resume is not None else len(store.entries)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            hello = {"client_id": "fake", "stream": "fake", "stream_path": stream_path}
            self.wfile.write(f"retry: 1000\nevent: connected\ndata: {json.dumps(hello)}\n\n".encode())
            self.wfile.flush()
            try:
                while True:
                    with store.cond:
                        while pos >= len(store.entries) and store.kicks == kicks:
                            if not store.cond.wait(timeout=5):
                                break
                        if store.kicks != kicks:
                            return
                        batch = store.entries[pos : pos + 2000]
                    if not batch:
                        self.wfile.write(b": heartbeat\n\n")
                    out = []
                    for eid, level, message, source, text in batch:
                        if flt.matches(level, message, source):
                            out.append(f"id: {eid}\ndata: {text}\n\n")
                    pos += len(batch)
                    if out:
                        self.wfile.write("".join(out).encode())
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--prefix", default="")
    here = Path(__file__).resolve().parent
    ap.add_argument("--page", default=str(here.parent.parent / "src" / "page" / "index.html"))
    ap.add_argument("--stream-path", default="/stream")
    ap.add_argument("--first-id", type=int, default=1000)
    args = ap.parse_args()
    prefix = args.prefix.rstrip("/")
    store = Store(args.first_id)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(store, prefix, args.page, args.stream_path))
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
