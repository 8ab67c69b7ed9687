"""Real remotes on localhost for the team tests: an S3 API server (moto's server mode) and an SFTP server.

Both run in this process on a free port and stop when their fixture ends; DVC talks to them
through its own clients (dvc-s3 with an endpoint URL, dvc-ssh with a key file), as users do.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import boto3
import pytest
from moto.server import ThreadedMotoServer

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:<port>
    bucket: str
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class SFTPServer:
    host: str
    port: int
    user: str
    keyfile: Path  # the client's private key; the server accepts only its public half
    root: Path     # what the server serves as /


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3 = S3Server(endpoint=f"http://{host}:{port}", bucket="seqlab-team", access_key_id="team-key",
                  secret_access_key="team-secret")
    boto3.client("s3", endpoint_url=s3.endpoint, region_name="us-east-1", aws_access_key_id=s3.access_key_id,
                 aws_secret_access_key=s3.secret_access_key).create_bucket(Bucket=s3.bucket)
    yield s3
    server.stop()


@pytest.fixture(scope="module")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SFTPServer]:
    work = tmp_path_factory.mktemp("sftp")
    root = work / "root"
    root.mkdir()
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key.write_private_key(work / "id_ed25519")
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    async def listen() -> asyncssh.SSHAcceptor:
        return await asyncssh.listen("127.0.0.1", 0, server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
                                     authorized_client_keys=authorized,
                                     sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root)))
    acceptor = asyncio.run_coroutine_threadsafe(listen(), loop).result(timeout=30)
    port = acceptor.sockets[0].getsockname()[1]
    yield SFTPServer(host="127.0.0.1", port=port, user="teammate", keyfile=work / "id_ed25519", root=root)
    acceptor.close()
    asyncio.run_coroutine_threadsafe(acceptor.wait_closed(), loop).result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=30)
