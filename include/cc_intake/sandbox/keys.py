"""SSH keys for the sandbox: one ed25519 host key for every sandbox SFTP server, one client key.

Generated once into a folder and reused, so a sandbox restarted on the same work folder keeps
the same host key and the Airflow connections built from it stay valid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from include.cc_intake.layout import atomic_writer

HOST_KEY_NAME = "ssh_host_ed25519_key"
CLIENT_KEY_NAME = "intake_client_ed25519_key"


@dataclass(frozen=True)
class SandboxKeys:
    """Paths and text forms of the sandbox host and client keys."""

    host_key_path: Path
    client_key_path: Path

    @property
    def host_key(self) -> asyncssh.SSHKey:
        return asyncssh.read_private_key(str(self.host_key_path))

    @property
    def client_key(self) -> asyncssh.SSHKey:
        return asyncssh.read_private_key(str(self.client_key_path))

    @property
    def host_public_line(self) -> str:
        """The host public key as ``ssh-ed25519 AAAA…`` (what the ``host_key`` extra wants)."""
        return _public_line(self.host_key)

    @property
    def client_public_line(self) -> str:
        """The client public key as ``ssh-ed25519 AAAA…`` (an authorized_keys line)."""
        return _public_line(self.client_key)

    @property
    def client_private_key(self) -> str:
        """The client private key in OpenSSH PEM form (the ``private_key`` extra)."""
        return self.client_key_path.read_text(encoding="ascii")

    def known_hosts_line(self, host: str, port: int) -> str:
        """A known_hosts line for ``host:port`` (``[host]:port`` off port 22, as OpenSSH writes)."""
        where = host if port == 22 else f"[{host}]:{port}"
        return f"{where} {self.host_public_line}"


def _public_line(key: asyncssh.SSHKey) -> str:
    # export_public_key ends with a comment-less newline; keep "type base64" only.
    return " ".join(key.export_public_key("openssh").decode("ascii").split()[:2])


def _write_key(path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    # Created 0600 from the start: a private key must never be readable by others, even briefly.
    with atomic_writer(path, str(os.getpid()), binary=True, mode=0o600) as handle:
        handle.write(key.export_private_key("openssh"))
    pub = path.with_name(path.name + ".pub")
    pub.write_text(_public_line(key) + "\n", encoding="ascii")


def ensure_keys(folder: Path) -> SandboxKeys:
    """Create the host and client keys in ``folder`` if missing (files 0600) and return them."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    keys = SandboxKeys(folder / HOST_KEY_NAME, folder / CLIENT_KEY_NAME)
    for path in (keys.host_key_path, keys.client_key_path):
        if not path.is_file():
            _write_key(path)
        path.chmod(0o600)
    return keys
