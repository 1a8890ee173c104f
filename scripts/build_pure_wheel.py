"""Build the pure-Python wheel (``py3-none-any``): the package without the native core.

    python scripts/build_pure_wheel.py [--out dist]

It installs wherever no native wheel fits; ``durable_streams._core`` then picks the pure core.
maturin builds only platform wheels for a crate with bindings, so this writes the wheel itself
(a zip with METADATA, WHEEL and RECORD, per the wheel spec) from ``python/durable_streams``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DIST_NAME = "durable_streams_rs"


def version() -> str:
    cargo = tomllib.loads((REPO / "Cargo.toml").read_text())
    return str(cargo["package"]["version"])


def metadata(ver: str) -> str:
    """Core metadata 2.1 from pyproject.toml, as maturin writes it for the native wheels."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = [
        "Metadata-Version: 2.1",
        "Name: durable-streams-rs",
        f"Version: {ver}",
        f"Summary: {project['description']}",
        f"Keywords: {','.join(project['keywords'])}",
        f"Author: {project['authors'][0]['name']}",
        f"License: {project['license']['text']}",
        f"Requires-Python: {project['requires-python']}",
    ]
    lines += [
        f"Classifier: {c}" for c in project["classifiers"] if c != "Programming Language :: Rust"
    ]
    lines += [f"Project-URL: {name}, {url}" for name, url in project["urls"].items()]
    lines += [f"Requires-Dist: {dep}" for dep in project["dependencies"]]
    for extra, deps in project["optional-dependencies"].items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f"Requires-Dist: {dep}; extra == '{extra}'" for dep in deps]
    lines.append("Description-Content-Type: text/markdown; charset=UTF-8")
    return "\n".join(lines) + "\n\n" + (REPO / project["readme"]).read_text()


def entry_points() -> str:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    return "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())


def package_files() -> list[Path]:
    root = REPO / "python" / "durable_streams"
    keep = re.compile(r".*\.(py|pyi|typed)$")
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and keep.match(p.name) and "__pycache__" not in p.parts
    )


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build(out_dir: Path) -> Path:
    ver = version()
    dist_info = f"{DIST_NAME}-{ver}.dist-info"
    wheel_path = out_dir / f"{DIST_NAME}-{ver}-py3-none-any.whl"
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[str] = []
    with zipfile.ZipFile(wheel_path, "w", zipfile.ZIP_DEFLATED) as wheel:

        def add(name: str, data: bytes) -> None:
            wheel.writestr(name, data)
            records.append(record_line(name, data))

        for path in package_files():
            add(path.relative_to(REPO / "python").as_posix(), path.read_bytes())
        add(f"{dist_info}/METADATA", metadata(ver).encode())
        add(f"{dist_info}/entry_points.txt", entry_points().encode())
        add(
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: durable_streams build_pure_wheel\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        )
        records.append(f"{dist_info}/RECORD,,")
        wheel.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    return wheel_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    print(build(parser.parse_args().out))


if __name__ == "__main__":
    main()
