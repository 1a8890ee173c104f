"""nginx from the system's packages, run as a child process for tests. Standard library only.

::

    with NginxCache(origin_url) as cache:       # deploy/nginx/durable-streams-cache.conf
        read(cache.url + "/stream/path")         # same paths as the origin
        cache.log_lines()                        # its access log, one dict per request

``ensure_nginx()`` finds the nginx binary, or installs Debian's ``nginx`` package with
apt-get (as root, or through ``sudo -n``) under a file lock, so parallel pytest-xdist workers
install it once; it raises ``RuntimeError`` saying what is missing when it cannot.

``NginxCache`` runs the committed configuration with three lines rewritten (the cache
folder, the origin's address, the listening port) in a fresh temporary prefix: nginx runs in
the foreground (``daemon off``), its master in a session of its own, and stops with the block.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

__all__ = ["CONFIG", "NginxCache", "ensure_nginx"]

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "durable-streams-cache.conf"
PACKAGE = "nginx"
INSTALL_TIMEOUT = 300.0
STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
LOCK_FILE = Path(tempfile.gettempdir()) / "durable-streams-tests-nginx-install.lock"
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])

LOG_LINE = re.compile(
    r'^(?P<client>\S+) \[[^\]]*\] "(?P<method>\S+) (?P<uri>\S+) [^"]*" (?P<status>\d+) '
    r"(?P<bytes>\d+) cache=(?P<cache>\S+) upstream=(?P<upstream>\S+) upstream_time=\S+$"
)


def _find() -> str | None:
    return shutil.which("nginx", path=SEARCH_PATH)


@contextlib.contextmanager
def _install_lock(deadline: float) -> Iterator[None]:
    import fcntl

    with open(LOCK_FILE, "a+b") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"timed out waiting for another process's nginx install (lock {LOCK_FILE})"
                    ) from None
                time.sleep(0.2)  # flock has no timeout of its own
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _run(command: list[str], deadline: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    remaining = max(1.0, deadline - time.monotonic())
    try:
        return subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            timeout=remaining,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"`{' '.join(command)}` did not finish in time: {exc.output}") from None


def ensure_nginx(timeout: float = INSTALL_TIMEOUT) -> str:
    """The nginx binary's path; installs Debian's nginx package first if there is none."""
    found = _find()
    if found is not None:
        return found
    deadline = time.monotonic() + timeout
    apt_get = shutil.which("apt-get", path=SEARCH_PATH)
    if apt_get is None:
        raise RuntimeError(
            "these tests need nginx, and neither nginx nor apt-get (to install it) is on this "
            "machine; install nginx (any 1.18 or newer) and run them again"
        )
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo", path=SEARCH_PATH)
        if sudo is None:
            raise RuntimeError(
                "these tests need nginx; installing it with apt-get needs root, and this user "
                "is not root and has no sudo: run `apt-get install nginx` as root"
            )
        prefix = [sudo, "-n"]
    with _install_lock(deadline):
        found = _find()
        if found is not None:  # another worker installed it while this one waited
            return found
        # Wait for another apt/dpkg (not ours) rather than fail at once.
        install = [
            *prefix,
            apt_get,
            "-o",
            "DPkg::Lock::Timeout=120",
            "install",
            "-y",
            "--no-install-recommends",
            PACKAGE,
        ]
        done = _run(install, deadline)
        if done.returncode != 0:
            # A fresh machine may have no package lists yet.
            updated = _run([*prefix, apt_get, "-o", "DPkg::Lock::Timeout=120", "update"], deadline)
            if updated.returncode != 0:
                raise RuntimeError(
                    f"`{' '.join(install)}` failed, and so did apt-get update:\n"
                    f"{done.stdout}\n{updated.stdout}"
                )
            done = _run(install, deadline)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(install)}` failed:\n{done.stdout}")
        found = _find()
        if found is None:
            raise RuntimeError(
                f"apt-get installed {PACKAGE} but no nginx binary is on {SEARCH_PATH}"
            )
        return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NginxCache:
    """deploy/nginx/durable-streams-cache.conf in front of ``origin_url``, on 127.0.0.1."""

    def __init__(self, origin_url: str, *, binary: str | None = None) -> None:
        parts = urlsplit(origin_url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"origin_url must be http://host:port, not {origin_url!r}")
        self._origin = f"{parts.hostname}:{parts.port}"
        self._binary = binary
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._url: str | None = None
        self.access_log = Path()
        self.error_log = Path()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("nginx is not running")
        return self._url

    def site(self, prefix: Path, port: int) -> str:
        """The committed file, with this run's cache folder, origin, port and log."""
        text = CONFIG.read_text(encoding="utf-8")
        for pattern, value in (
            (r"^(proxy_cache_path )/var/cache/nginx/durable-streams ", f"{prefix}/cache "),
            (r"^(\s*server )127\.0\.0\.1:4437;", f"{self._origin};"),
            (r"^(\s*listen )127\.0\.0\.1:8080;", f"127.0.0.1:{port};"),
            (r"^(\s*access_log )/var/log/nginx/durable-streams\.log ", f"{self.access_log} "),
        ):
            text, count = re.subn(pattern, rf"\g<1>{value}", text, flags=re.M)
            if count != 1:
                raise RuntimeError(f"{CONFIG} should have one line matching {pattern!r}")
        return text

    def main_config(self, prefix: Path) -> str:
        """nginx.conf: a foreground nginx whose every file is under ``prefix``."""
        # As root, nginx's workers would switch to www-data, who cannot use this folder.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        temp = "".join(
            f"    {kind}_temp_path {prefix}/{kind}_temp;\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return (
            f"{user}daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n"
            f"error_log {self.error_log} info;\nevents {{ worker_connections 1024; }}\n"
            f"http {{\n{temp}    include {prefix}/site.conf;\n}}\n"
        )

    def start(self) -> NginxCache:
        if self._dir is not None:
            raise RuntimeError("an NginxCache starts once")
        binary = self._binary or ensure_nginx()
        self._dir = tempfile.TemporaryDirectory(prefix="ds-nginx-")
        prefix = Path(self._dir.name)
        self.access_log = prefix / "access.log"
        self.error_log = prefix / "error.log"
        (prefix / "nginx.conf").write_text(self.main_config(prefix), encoding="utf-8")
        try:
            # The free port is only free when looked at: another process may take it first.
            for attempt in range(3):
                port = _free_port()
                (prefix / "site.conf").write_text(self.site(prefix, port), encoding="utf-8")
                if self._spawn(binary, prefix, port):
                    break
                if attempt == 2:
                    raise RuntimeError(f"nginx found no free port:\n{self.stderr()}")
        except BaseException:
            self.stop()
            raise
        self._url = f"http://127.0.0.1:{port}"
        return self

    def _spawn(self, binary: str, prefix: Path, port: int) -> bool:
        """Start nginx; True once it listens, False if its port was taken."""
        with open(prefix / "stderr.log", "wb") as stderr:
            proc = self._proc = subprocess.Popen(
                [binary, "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"), "-e", "stderr"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        pid_file = prefix / "nginx.pid"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            code = proc.poll()
            if code is not None:
                if "Address already in use" in self.stderr():
                    return False
                raise RuntimeError(f"nginx exited with code {code} at startup:\n{self.stderr()}")
            # nginx writes its pid file once it holds its listening socket.
            with contextlib.suppress(OSError, ValueError):
                if int(pid_file.read_text()) == proc.pid:
                    return True
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"nginx did not start within {STARTUP_TIMEOUT:g} s:\n{self.stderr()}"
                )
            time.sleep(0.05)  # polling a file: nothing to wait on

    def stderr(self) -> str:
        if self._dir is None:
            return ""
        texts = []
        for name in ("stderr.log", "error.log"):
            with contextlib.suppress(OSError):
                texts.append((Path(self._dir.name) / name).read_text(errors="replace"))
        return "\n".join(texts)

    def log_lines(self) -> list[dict[str, str]]:
        """The access log so far, one dict per request (see LOG_LINE for the keys)."""
        lines = []
        for line in self.access_log.read_text(encoding="utf-8").splitlines():
            match = LOG_LINE.match(line)
            if match is None:
                raise AssertionError(f"unexpected access log line: {line!r}")
            lines.append(match.groupdict())
        return lines

    def wait_for_lines(
        self, wanted: Callable[[list[dict[str, str]]], bool], timeout: float = 10.0
    ) -> list[dict[str, str]]:
        """The access log once ``wanted`` holds for it: nginx writes a request's line when the
        request is finalized, which for a long answer can come after its reader has left."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_lines()
            if wanted(lines) or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)  # polling the file: nginx says nothing when it writes

    def stop(self) -> None:
        proc, self._proc, self._url = self._proc, None, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # nginx's fast shutdown, workers included
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(STOP_TIMEOUT)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> NginxCache:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
