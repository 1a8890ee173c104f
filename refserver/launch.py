"""Install and run the pinned reference Durable Streams server.

Standard library only: tests/conftest.py and the demo import this file by
putting ``refserver/`` on ``sys.path``; it also runs as a command::

    python refserver/launch.py [--port N] [--long-poll-timeout MS] [--data-dir PATH]

The server is ``@durable-streams/server`` from npm, pinned in
``refserver/package.json`` with ``refserver/package-lock.json``. ``npm ci``
rejects that lockfile on npm 11 (it lacks other platforms' optional packages
of msgpackr-extract), so installation runs ``npm install --omit=dev`` against
the committed lockfile, with ``--no-save`` so it never rewrites tracked files.

``ReferenceServer`` starts ``node serve.mjs`` with stdin as a pipe. serve.mjs
exits when that pipe closes, so a test process that dies without cleaning up
does not leave a server behind.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType

REFSERVER_DIR = Path(__file__).resolve().parent
PACKAGE_NAME = "@durable-streams/server"
SERVE_SCRIPT = REFSERVER_DIR / "serve.mjs"
INSTALLED_PACKAGE_JSON = (
    REFSERVER_DIR / "node_modules" / "@durable-streams" / "server" / "package.json"
)
LOCK_FILE = REFSERVER_DIR / ".install.lock"

# The one install command that works from the committed lockfile on a fresh
# machine (see the module docstring for why not `npm ci`).
INSTALL_ARGS = (
    "install",
    "--omit=dev",
    "--no-save",
    "--no-audit",
    "--no-fund",
    "--update-notifier=false",
)

DEFAULT_INSTALL_TIMEOUT = 300.0
DEFAULT_STARTUP_TIMEOUT = 30.0
DEFAULT_STOP_TIMEOUT = 10.0

__all__ = [
    "DEFAULT_INSTALL_TIMEOUT",
    "DEFAULT_STARTUP_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "INSTALL_ARGS",
    "PACKAGE_NAME",
    "REFSERVER_DIR",
    "ReferenceServer",
    "ensure_installed",
    "is_installed",
    "main",
    "pinned_version",
]


def pinned_version() -> str:
    """The exact server version pinned in refserver/package.json."""
    manifest = json.loads((REFSERVER_DIR / "package.json").read_text(encoding="utf-8"))
    return str(manifest["dependencies"][PACKAGE_NAME])


def is_installed() -> bool:
    """True when node_modules holds the pinned version of the server package."""
    try:
        installed = json.loads(INSTALLED_PACKAGE_JSON.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(installed.get("version") == pinned_version())


def _find_executable(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"{name!r} was not found on PATH; the reference server needs Node.js (>= 18) and npm"
        )
    return path


@contextmanager
def _install_lock(deadline: float) -> Iterator[None]:
    """Hold an exclusive lock on refserver/.install.lock (POSIX; no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks in the stdlib that fit; go unlocked
        yield
        return
    with open(LOCK_FILE, "a+b") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"timed out waiting for another process's npm install (lock {LOCK_FILE})"
                    ) from None
                # Another process is installing; poll the lock, it has no fd to wait on.
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """Kill a process started with start_new_session=True, and its children."""
    if proc.poll() is not None:
        return
    if os.name == "posix":
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()


def ensure_installed(timeout: float = DEFAULT_INSTALL_TIMEOUT, *, quiet: bool = True) -> Path:
    """Install the pinned server into refserver/node_modules if it is not there.

    Runs ``npm install --omit=dev --no-save`` in refserver/, bounded by
    ``timeout`` seconds (waiting for a concurrent installer included). Raises
    RuntimeError with npm's output if it fails. Returns the refserver folder.
    """
    if is_installed():
        return REFSERVER_DIR
    deadline = time.monotonic() + timeout
    _find_executable("node")
    npm = _find_executable("npm")
    with _install_lock(deadline):
        if is_installed():  # another process finished it while we waited
            return REFSERVER_DIR
        remaining = max(1.0, deadline - time.monotonic())
        command = [npm, *INSTALL_ARGS]
        if not quiet:
            print(
                f"refserver: installing {PACKAGE_NAME}@{pinned_version()} "
                f"({' '.join(['npm', *INSTALL_ARGS])})",
                file=sys.stderr,
                flush=True,
            )
        proc = subprocess.Popen(
            command,
            cwd=REFSERVER_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=(os.name == "posix"),
        )
        try:
            output, _ = proc.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            output, _ = proc.communicate()
            raise RuntimeError(
                f"`npm {' '.join(INSTALL_ARGS)}` in {REFSERVER_DIR} did not finish within "
                f"{timeout:.0f} s; its output:\n{output.decode('utf-8', 'replace')}"
            ) from None
        except BaseException:
            _kill_tree(proc)
            proc.communicate()
            raise
        text = output.decode("utf-8", "replace")
        if proc.returncode != 0:
            raise RuntimeError(
                f"`npm {' '.join(INSTALL_ARGS)}` in {REFSERVER_DIR} failed with exit code "
                f"{proc.returncode}; its output:\n{text}"
            )
        if not is_installed():
            raise RuntimeError(
                f"`npm {' '.join(INSTALL_ARGS)}` succeeded but {INSTALLED_PACKAGE_JSON} does "
                f"not hold version {pinned_version()}; npm's output:\n{text}"
            )
        if not quiet:
            print(text.rstrip(), file=sys.stderr, flush=True)
    return REFSERVER_DIR


class ReferenceServer:
    """A running reference server on 127.0.0.1, as a context manager.

    >>> with ReferenceServer(long_poll_timeout_ms=500) as server:
    ...     server.url  # 'http://127.0.0.1:PORT'

    ``start()`` installs the package if needed (``install=True``), spawns
    ``node serve.mjs`` and reads its one stdout line for the URL, waiting at
    most ``startup_timeout`` seconds. The server's stderr is drained in the
    background (kept as the last ``stderr_lines`` lines, see ``stderr_text``;
    echoed to our stderr when ``echo_stderr`` is true).
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        long_poll_timeout_ms: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        compression: bool = True,
        webhooks: bool = False,
        install: bool = True,
        install_timeout: float = DEFAULT_INSTALL_TIMEOUT,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        echo_stderr: bool = False,
        stderr_lines: int = 200,
        node: str | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        if long_poll_timeout_ms is not None and long_poll_timeout_ms < 1:
            raise ValueError(f"long_poll_timeout_ms must be >= 1, got {long_poll_timeout_ms}")
        self.port = port
        self.host = host
        self.long_poll_timeout_ms = long_poll_timeout_ms
        self.data_dir = None if data_dir is None else os.fspath(data_dir)
        self.compression = compression
        self.webhooks = webhooks
        self.install = install
        self.install_timeout = install_timeout
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.echo_stderr = echo_stderr
        self.node = node
        self._url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=stderr_lines)
        self._stderr_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # -- public API ---------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43121`` (no trailing slash)."""
        if self._url is None:
            raise RuntimeError("the reference server is not running; call start() first")
        return self._url

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The node process (for tests that check how it ends)."""
        return self._proc

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stderr_text(self) -> str:
        """The last lines the server wrote to stderr."""
        with self._stderr_lock:
            return "".join(self._stderr_tail)

    def command(self) -> list[str]:
        """The command line start() runs (in refserver/)."""
        node = self.node or _find_executable("node")
        cmd = [node, str(SERVE_SCRIPT), "--host", self.host, "--port", str(self.port)]
        if self.long_poll_timeout_ms is not None:
            cmd += ["--long-poll-timeout", str(int(self.long_poll_timeout_ms))]
        if self.data_dir is not None:
            cmd += ["--data-dir", self.data_dir]
        if not self.compression:
            cmd.append("--no-compression")
        if self.webhooks:
            cmd.append("--webhooks")
        return cmd

    def start(self) -> ReferenceServer:
        if self._proc is not None:
            raise RuntimeError("this ReferenceServer was already started")
        if self.install:
            ensure_installed(timeout=self.install_timeout)
        elif not is_installed():
            raise RuntimeError(
                f"{PACKAGE_NAME} is not installed in {REFSERVER_DIR / 'node_modules'}; "
                "call ensure_installed() or pass install=True"
            )
        proc = subprocess.Popen(
            self.command(),
            cwd=REFSERVER_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._proc = proc
        lines: queue.Queue[bytes | None] = queue.Queue()
        self._spawn(self._pump_stdout, proc, lines)
        self._spawn(self._pump_stderr, proc)
        try:
            self._url = self._await_url(proc, lines)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> int | None:
        """Stop the server; returns its exit code (None if it was never started).

        Closes its stdin and sends SIGTERM, waits up to ``stop_timeout``
        seconds, then kills it. Safe to call more than once.
        """
        proc = self._proc
        if proc is None:
            return None
        self._url = None
        if proc.poll() is None:
            self._close_stdin(proc)
            with suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=self.stop_timeout)
        else:
            self._close_stdin(proc)
        # The pumps end at EOF, which comes once the process (and so the pipes) is gone.
        for thread in self._threads:
            thread.join(timeout=self.stop_timeout)
        self._threads.clear()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        return proc.returncode

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self._url or ("stopped" if self._proc is not None else "not started")
        return f"<ReferenceServer {state}>"

    # -- internals ----------------------------------------------------------

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    @staticmethod
    def _close_stdin(proc: subprocess.Popen[bytes]) -> None:
        if proc.stdin is not None and not proc.stdin.closed:
            with suppress(OSError):  # broken pipe: the server is already gone
                proc.stdin.close()

    @staticmethod
    def _pump_stdout(proc: subprocess.Popen[bytes], lines: queue.Queue[bytes | None]) -> None:
        assert proc.stdout is not None
        try:
            for line in iter(proc.stdout.readline, b""):
                lines.put(line)
        except (OSError, ValueError):
            pass
        finally:
            lines.put(None)  # EOF: the server exited or closed stdout

    def _pump_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        try:
            for raw in iter(proc.stderr.readline, b""):
                line = raw.decode("utf-8", "replace")
                with self._stderr_lock:
                    self._stderr_tail.append(line)
                if self.echo_stderr:
                    sys.stderr.write(line)
                    sys.stderr.flush()
        except (OSError, ValueError):
            pass

    def _await_url(self, proc: subprocess.Popen[bytes], lines: queue.Queue[bytes | None]) -> str:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(
                    self._failure(f"did not report its URL within {self.startup_timeout:g} s")
                )
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue  # the loop head raises the timeout
            if line is None:
                try:
                    code = proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    code = None
                # Let the stderr pump catch up with what a dying server wrote.
                for thread in self._threads:
                    thread.join(timeout=2.0)
                raise RuntimeError(self._failure(f"exited (code {code}) before reporting its URL"))
            text = line.decode("utf-8", "replace").strip()
            try:
                url = json.loads(text)["url"]
            except (ValueError, KeyError, TypeError):
                raise RuntimeError(self._failure(f"printed an unexpected line: {text!r}")) from None
            if not isinstance(url, str) or not url.startswith("http://"):
                raise RuntimeError(self._failure(f"reported a bad URL: {url!r}"))
            return url

    def _failure(self, what: str) -> str:
        stderr = self.stderr_text().rstrip() or "(nothing)"
        return f"the reference server ({' '.join(self.command())}) {what}; its stderr:\n{stderr}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python refserver/launch.py",
        description=f"Install (if needed) and run the pinned {PACKAGE_NAME} on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (default 0: a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--long-poll-timeout",
        type=int,
        default=None,
        metavar="MS",
        help="long-poll timeout and SSE keep-alive interval in ms (server default 30000)",
    )
    parser.add_argument(
        "--data-dir", default=None, help="file-backed storage folder (default in-memory)"
    )
    parser.add_argument(
        "--webhooks",
        action="store_true",
        help="let subscriptions deliver by webhook (pull-wake ones work either way)",
    )
    parser.add_argument(
        "--install-timeout",
        type=float,
        default=DEFAULT_INSTALL_TIMEOUT,
        metavar="S",
        help=f"bound on npm install, seconds (default {DEFAULT_INSTALL_TIMEOUT:g})",
    )
    args = parser.parse_args(argv)

    try:
        ensure_installed(timeout=args.install_timeout, quiet=False)
        server = ReferenceServer(
            port=args.port,
            host=args.host,
            long_poll_timeout_ms=args.long_poll_timeout,
            data_dir=args.data_dir,
            webhooks=args.webhooks,
            echo_stderr=True,
            install=False,
        )
        server.start()
    except (RuntimeError, ValueError) as err:
        print(f"refserver: {err}", file=sys.stderr)
        return 1

    print(server.url, flush=True)
    print("refserver: serving; press Ctrl+C to stop", file=sys.stderr, flush=True)
    try:
        proc = server.process
        assert proc is not None
        code = proc.wait()
        print(f"refserver: the server exited with code {code}", file=sys.stderr)
        return 1 if code else 0
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
