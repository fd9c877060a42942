"""Safe archive extraction and checksums: hand-made zips and tars, hand-computed digests."""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from nodulekit.data.archive import list_members, safe_extract
from nodulekit.data.checksums import file_digest, parse_checksum, verify_file
from nodulekit.errors import ChecksumError, UnsafeArchiveError


def _zip(path: Path, members: dict[str, bytes], *, symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_zip_extracts_nested_files(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"subset0/x.mhd": b"header", "subset0/x.raw": b"\x01\x02"})
    written = safe_extract(archive, tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in written] == [
        "subset0/x.mhd",
        "subset0/x.raw",
    ]
    assert (tmp_path / "out/subset0/x.raw").read_bytes() == b"\x01\x02"
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["subset0", "x.mhd", "x.raw"]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../evil", r"'\.\.' component"),
        ("ok/../../evil", r"'\.\.' component"),
        ("/etc/x", "absolute path"),
        ("C:/Windows/x", "drive letter"),
        ("ok\\..\\..\\evil", "backslash"),
    ],
)
def test_zip_with_escaping_member_is_refused_before_writing(
    tmp_path: Path, name: str, why: str
) -> None:
    archive = _zip(tmp_path / "bad.zip", {"fine.txt": b"fine", name: b"evil"})
    target = tmp_path / "inner" / "out"
    with pytest.raises(UnsafeArchiveError, match=rf"bad\.zip: member .*{why}"):
        safe_extract(archive, target)
    assert not target.exists()  # nothing inside, not even the folder
    assert _files_under(tmp_path) == ["bad.zip"]  # nothing outside


@pytest.mark.parametrize("link", ["/etc/passwd", "../../outside", "sub/../.."])
def test_zip_symlink_leaving_target_is_refused(tmp_path: Path, link: str) -> None:
    archive = _zip(tmp_path / "link.zip", {"a.txt": b"a"}, symlinks={"escape": link})
    with pytest.raises(UnsafeArchiveError, match=r"link\.zip: member 'escape' is a link to"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_writing_through_a_link_member_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "l.zip", {"d/x": b"x"}, symlinks={"d": "sub"})
    with pytest.raises(UnsafeArchiveError, match="written through a link"):
        safe_extract(archive, tmp_path / "out")


def test_zip_symlink_inside_target_is_made(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "l.zip", {"sub/x.txt": b"x"}, symlinks={"alias": "sub/x.txt"})
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out/alias").is_symlink()
    assert (tmp_path / "out/alias").read_bytes() == b"x"


def test_tar_with_link_outside_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        data = b"hello"
        info = tarfile.TarInfo("ok.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(UnsafeArchiveError, match="member 'passwd' is a link to '/etc/passwd'"):
        safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tar_extracts_files_and_hard_links(tmp_path: Path) -> None:
    path = tmp_path / "t.tar"
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo("d/a.txt")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
        hard = tarfile.TarInfo("d/b.txt")
        hard.type = tarfile.LNKTYPE
        hard.linkname = "d/a.txt"
        tf.addfile(hard)
    assert list_members(path) == ["d/a.txt", "d/b.txt"]
    safe_extract(path, tmp_path / "out")
    assert (tmp_path / "out/d/b.txt").read_bytes() == b"abc"


def test_not_an_archive_says_so(tmp_path: Path) -> None:
    path = tmp_path / "subset0.zip"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(UnsafeArchiveError, match=r"subset0\.zip: not a zip or tar archive"):
        safe_extract(path, tmp_path / "out")


# ---- checksums --------------------------------------------------------------------------


def test_digests_match_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert file_digest(path) == "900150983cd24fb0d6963f7d28e17f72"  # md5("abc"), RFC 1321
    assert file_digest(path, "sha256") == hashlib.sha256(b"abc").hexdigest()
    assert verify_file(path, "md5:900150983cd24fb0d6963f7d28e17f72")
    assert verify_file(path, hashlib.sha256(b"abc").hexdigest().upper())  # bare hex, any case


def test_checksum_mismatch_names_file_digests_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "annotations.csv"
    path.write_bytes(b"abd")
    with pytest.raises(ChecksumError) as caught:
        verify_file(path, "md5:900150983cd24fb0d6963f7d28e17f72")
    message = str(caught.value)
    assert "annotations.csv" in message
    assert "900150983cd24fb0d6963f7d28e17f72" in message
    assert hashlib.md5(b"abd").hexdigest() in message
    assert "download it again" in message


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("abc", "3 characters"),
        ("crc32:1234", "algorithm 'crc32'"),
        ("md5:" + "z" * 32, "not a md5"),
    ],
)
def test_malformed_checksums_are_refused(text: str, match: str) -> None:
    with pytest.raises(ChecksumError, match=match):
        parse_checksum(text)
