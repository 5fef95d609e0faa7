"""Small builders for throwaway packs and file trees."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import MINI_PACK


def build_file_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def copy_mini_pack(destination: Path) -> Path:
    """A writable copy of the mini course, for tests that break it on purpose."""
    shutil.copytree(MINI_PACK, destination)
    return destination


def edit_yaml(path: Path, change: dict[str, Any]) -> None:
    data = yaml.safe_load(path.read_text())
    data.update(change)
    path.write_text(yaml.safe_dump(data))


@contextlib.contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    """Make files and directories unwritable, even for root (who ignores permission bits):
    as root through the immutable attribute, otherwise through the permission bits. Skips the
    test where neither can be done."""
    if os.geteuid() == 0:
        done: list[Path] = []
        try:
            for path in paths:
                if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
                    pytest.skip("root, and this filesystem has no immutable attribute")
                done.append(path)
            yield
        finally:
            for path in done:
                subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        modes = {path: path.stat().st_mode for path in paths}
        try:
            for path in paths:
                path.chmod(modes[path] & ~0o222)
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)


@contextlib.contextmanager
def small_disk(mountpoint: Path, size: str = "2m") -> Iterator[Path]:
    """A tiny filesystem of its own at ``mountpoint`` (tmpfs), to fill up. Needs the right to
    mount; skips the test otherwise."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)],
        capture_output=True,
    )
    if mounted.returncode:
        pytest.skip("cannot mount a small filesystem here (needs root)")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def fill_disk(directory: Path) -> None:
    """Write into ``directory`` until its disk is full."""
    with (directory / "filler").open("wb", buffering=0) as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * 4096)


class EngineProxy:
    """A Unix socket that relays to the Docker engine until :meth:`stop`, when the engine
    seems to vanish for whoever reached it through here (``DOCKER_HOST=proxy.url``)."""

    def __init__(self, target: str, path: Path) -> None:
        self.target = target
        self.path = path
        self.url = f"unix://{path}"
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # stopped
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        self._listener.close()
        self.path.unlink(missing_ok=True)
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
