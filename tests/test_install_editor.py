"""scripts/install_editor.py: the editor's package installed only as the lock pins it (pure logic: the
tarballs are made here, nothing is downloaded)."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_database

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install_editor.py"
spec = importlib.util.spec_from_file_location("install_editor", SCRIPT)
install_editor = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install_editor)


def tarball(members: list[tuple[str, bytes | None, bytes]]) -> bytes:
    """A gzipped tar of (name, type, content): type tarfile.REGTYPE, DIRTYPE, SYMTYPE..."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, kind, content in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = content.decode()
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def editor_dir(tmp_path: Path, data: bytes, declared: str | None = None) -> Path:
    lock = {
        "name": "rce-editor",
        "lockfileVersion": 3,
        "packages": {"": {}, "node_modules/codemirror": {"version": "5.65.21", "integrity": declared or integrity(data)}},
    }
    (tmp_path / "package-lock.json").write_text(json.dumps(lock))
    return tmp_path


GOOD = [("package/lib/codemirror.js", tarfile.REGTYPE, b"cm"), ("package/mode/python/python.js", tarfile.REGTYPE, b"py")]


def test_it_installs_the_locked_version_and_notes_the_lock(tmp_path):
    data = tarball(GOOD)
    asked = []
    install_editor.install(editor_dir(tmp_path, data), fetch=lambda name, version: asked.append((name, version)) or data)
    assert asked == [("codemirror", "5.65.21")]
    installed = tmp_path / "node_modules" / "codemirror"
    assert (installed / "lib" / "codemirror.js").read_bytes() == b"cm"
    assert (installed / "mode" / "python" / "python.js").read_bytes() == b"py"
    assert (tmp_path / "node_modules" / ".rce-installed-lock").read_text() == (tmp_path / "package-lock.json").read_text()


def test_a_tarball_that_does_not_match_the_lock_writes_nothing(tmp_path):
    data = tarball(GOOD)
    directory = editor_dir(tmp_path, data, declared=integrity(b"something else"))
    with pytest.raises(install_editor.Refused, match="integrity"):
        install_editor.install(directory, fetch=lambda name, version: data)
    assert not (tmp_path / "node_modules" / "codemirror").exists()
    assert not (tmp_path / "node_modules" / ".rce-installed-lock").exists()


@pytest.mark.parametrize(
    "member",
    [
        ("package/../../escaped.js", tarfile.REGTYPE, b"x"),
        ("/etc/escaped.js", tarfile.REGTYPE, b"x"),
        ("elsewhere/file.js", tarfile.REGTYPE, b"x"),
        ("package/lib/link.js", tarfile.SYMTYPE, b"/etc/passwd"),
        ("package/lib/fifo", tarfile.FIFOTYPE, b""),
    ],
    ids=["dot-dot", "absolute", "outside-package", "symlink", "fifo"],
)
def test_a_member_outside_the_package_or_not_a_plain_file_is_refused(tmp_path, member):
    data = tarball([*GOOD, member])
    with pytest.raises(install_editor.Refused):
        install_editor.install(editor_dir(tmp_path, data), fetch=lambda name, version: data)
    assert sorted(path.name for path in (tmp_path / "node_modules").iterdir()) == []
    assert not (tmp_path.parent / "escaped.js").exists()


def test_only_sha512_is_accepted():
    with pytest.raises(install_editor.Refused, match="sha512"):
        install_editor.checked(b"x", "sha1-" + base64.b64encode(hashlib.sha1(b"x").digest()).decode())
