"""A stand-in server for start_server's tests: `python -m tests.serve.banner_server MODE`.

split: prints `fake listening on http://127.0.0.1:8000 (x)` in two writes, the port cut in the
middle, then waits to be stopped; exit: says why on stderr and exits 3; silent: prints nothing.
"""
import os
import sys
import time

mode = sys.argv[1]
if mode == "split":
    os.write(1, b"fake listening on http://127.0.0.1:80")
    time.sleep(0.3)
    os.write(1, b"00 (x)\n")
elif mode == "exit":
    print("first line\nbad flag: --x", file=sys.stderr)
    sys.exit(3)
time.sleep(30)   # SIGTERM's default action ends it; start_server kills it sooner when silent
