"""A stand-in inference server for launch()'s tests: `python fake_server.py --port P --mode MODE`.

Serves GET /health and GET /v1/models (model "fake-model") on 127.0.0.1:P and prints
`fake server listening on PORT` once it accepts connections. Modes:
ok; slow-start (listens after --delay s); never-ready (/health is 503 forever); exit (an error
on stderr, exit 1 at once); crash-after (healthy, then an error and exit 3 after --delay s);
ignore-term (ignores SIGTERM); grandchild (first starts a child, mode sleeper, that ignores
SIGTERM and writes its pid to --child-pidfile); handoff (a forked child, its pid in
--child-pidfile, serves; the parent exits 0 while the child answers /v1/models); bad-models
(/v1/models is `{}`); no-models (/v1/models is 404); huge-models (/v1/models is 64 MiB). --pidfile: this process writes its pid there first.
"""
import argparse
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

MODELS = {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}


def write_pid(path: str, pid: int) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(str(pid))
    os.replace(path + ".tmp", path)   # readers never see a half-written file


def handler(mode: str, on_models=None):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/health":
                status, body = (503, b"loading") if mode == "never-ready" else (200, b"")
            elif self.path == "/v1/models":
                if on_models:
                    on_models()
                status, body = 200, json.dumps({} if mode == "bad-models" else MODELS).encode()
                if mode == "no-models":
                    status, body = 404, b'{"detail": "Not Found"}'
                if mode == "huge-models":  # 64 MiB of a model list: more than anyone should read
                    status, body = 200, b'{"data": [' + b'{"id": "m"},' * (64 << 16) + b'{"id": "m"}]}'
            else:
                status, body = 404, b""
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def serve(port: int, mode: str, on_models=None) -> None:
    httpd = HTTPServer(("127.0.0.1", port), handler(mode, on_models))
    print(f"fake server listening on {port}", flush=True)
    httpd.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", default="ok")
    p.add_argument("--delay", type=float, default=0.5)
    p.add_argument("--pidfile")
    p.add_argument("--child-pidfile")
    args = p.parse_args()
    if args.mode in ("ignore-term", "sleeper"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.pidfile:
        write_pid(args.pidfile, os.getpid())
    if args.mode == "sleeper":   # grandchild's child
        time.sleep(60)
        return
    if args.mode == "exit":
        print("Traceback (most recent call last):\nValueError: bad flag", file=sys.stderr, flush=True)
        sys.exit(1)
    if args.mode == "slow-start":
        time.sleep(args.delay)
    if args.mode == "crash-after":
        threading.Thread(target=crash_after, args=(args.delay,), daemon=True).start()
    if args.mode == "grandchild":
        subprocess.Popen([sys.executable, __file__, "--port", "0", "--mode", "sleeper",
                          "--pidfile", args.child_pidfile])
        for _ in range(400):   # bounded: 10 s; the child ignores SIGTERM before writing its pid
            if os.path.exists(args.child_pidfile):
                break
            time.sleep(0.025)
    on_models = None
    if args.mode == "handoff":
        go_r, go_w = os.pipe()
        if child := os.fork():
            write_pid(args.child_pidfile, child)
            os.read(go_r, 1)
            os._exit(0)
        on_models = functools.partial(end_parent, go_w)
    serve(args.port, args.mode, on_models)


def end_parent(go_w: int) -> None:
    """Make the parent exit 0, and return once it has: the answer then comes from an orphan."""
    parent = os.getppid()
    os.write(go_w, b"x")
    for _ in range(400):   # bounded: 2 s
        if os.getppid() != parent:
            return
        time.sleep(0.005)


def crash_after(delay_s: float) -> None:
    time.sleep(delay_s)
    print("RuntimeError: engine died", file=sys.stderr, flush=True)
    os._exit(3)


if __name__ == "__main__":
    main()
