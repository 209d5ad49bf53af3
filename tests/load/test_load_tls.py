"""https targets: the same load through a TLS-terminating proxy in front of the stub server."""
from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading

import pytest

from varcas.errors import VarcasError

from .helpers import load

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")


async def _pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


class TlsProxy:
    """127.0.0.1 TLS listener forwarding each connection to the stub server, in its own thread."""

    def __init__(self, cert_dir, upstream_port: int):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-keyout", str(cert_dir / "key.pem"), "-out", str(cert_dir / "cert.pem")],
                       check=True, capture_output=True)
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert_dir / "cert.pem", cert_dir / "key.pem")
        self.upstream_port = upstream_port
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def _run(self, ready):
        async def handle(reader, writer):
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

        async def main():
            self.server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=self.ctx)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            async with self.server:
                await self.server.serve_forever()

        try:
            self.loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass

    def close(self):
        self.loop.call_soon_threadsafe(self.server.close)
        for task in asyncio.all_tasks(self.loop):
            self.loop.call_soon_threadsafe(task.cancel)
        self.thread.join(5)


@pytest.fixture(scope="module")
def proxy(server, tmp_path_factory):
    p = TlsProxy(tmp_path_factory.mktemp("tls"), server.port)
    yield p
    p.close()


def test_https_with_insecure_streams_every_token(tmp_path, proxy):
    _, manifest, rows = load(tmp_path, f"https://127.0.0.1:{proxy.port}", num_requests=10, rps=100.0, insecure=True)
    assert manifest["status"] == "complete" and manifest["target"]["url"].startswith("https://")
    assert [r["error"] for r in rows] == [None] * 10
    assert all(len(r["token_ns"]) == 8 and r["output_tokens"] == 8 for r in rows)


def test_https_self_signed_without_insecure_is_refused_before_load(tmp_path, proxy):
    with pytest.raises(VarcasError, match="certificate verification failed"):
        load(tmp_path, f"https://127.0.0.1:{proxy.port}", num_requests=2)
    assert not (tmp_path / "run").exists()
