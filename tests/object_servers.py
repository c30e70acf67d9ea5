"""Real servers for the connector tests: moto's S3 server (with
authentication switched on, so a wrong key is refused as on AWS) and
gcp-storage-emulator (the GCS JSON API), each on a free port; and the
shared local ClickHouse, started by scripts/clickhouse when it is down."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3

REGION = "us-east-1"
REPO = Path(__file__).resolve().parents[1]
CLICKHOUSE_PORT = 9000


def ensure_clickhouse() -> None:
    """Start the local ClickHouse (scripts/clickhouse) unless it answers."""
    try:
        socket.create_connection(("127.0.0.1", CLICKHOUSE_PORT), timeout=1).close()
    except OSError:
        subprocess.run(
            [str(REPO / "scripts" / "clickhouse"), "start"], check=True, timeout=600
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer on port {port}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tool(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    return found


@dataclass
class S3Server:
    endpoint: str
    key_id: str
    secret: str

    def client(self) -> object:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
        )

    def credential(self) -> dict[str, object]:
        return {
            "type": "s3",
            "key_id": self.key_id,
            "secret": self.secret,
            "region": REGION,
            "endpoint": self.endpoint,
        }


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """moto in server mode; its first three requests (unauthenticated) make an
    IAM user with S3 rights, after which every request must be signed with
    that user's key."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    proc = subprocess.Popen(
        [_tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port, proc, "moto_server")
        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="noetl")
        key = iam.create_access_key(UserName="noetl")["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName="noetl", PolicyName="s3", PolicyDocument=json.dumps(policy)
        )
        yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        _stop(proc)


@dataclass
class GcsServer:
    endpoint: str

    def credential(self) -> dict[str, object]:
        return {"type": "gcs", "endpoint": self.endpoint, "project": "noetl-test"}


@contextmanager
def gcs_server() -> Iterator[GcsServer]:
    port = free_port()
    proc = subprocess.Popen(
        [
            _tool("gcp-storage-emulator"),
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--in-memory",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port, proc, "gcp-storage-emulator")
        yield GcsServer(f"http://127.0.0.1:{port}")
    finally:
        _stop(proc)
