"""LUNA16 download against a fake Zenodo on 127.0.0.1 (no test touches the internet)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nodulekit.cli import app
from nodulekit.data import Scan, read_scan, write_scan
from nodulekit.data.download import COMPLETE_MARKER, download_file, download_luna16, parse_subsets
from nodulekit.errors import ChecksumError, DiskSpaceError, DownloadError, UnsafeArchiveError

UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.100"
ARRAY = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4) - 1000
ANNOTATIONS = b"seriesuid,coordX,coordY,coordZ,diameter_mm\n" + UID.encode() + b",1.0,2.0,3.0,5.0\n"


class FakeZenodo:
    """Zenodo's record API and file downloads, with optional Range support and cut transfers."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, bytes]] = {}
        self.bad_md5: set[str] = set()
        self.range_support = True
        self.cut_after: int | None = None  # send only this many body bytes, then hang up
        self.requests: list[dict] = []
        self.base_url = ""

    def add(self, record: str, key: str, data: bytes) -> None:
        self.records.setdefault(record, {})[key] = data

    def record_json(self, record: str) -> bytes:
        files = []
        for key, data in self.records.get(record, {}).items():
            md5 = hashlib.md5(b"other" if key in self.bad_md5 else data).hexdigest()
            url = f"{self.base_url}/api/records/{record}/files/{key}/content"
            files.append({"key": key, "size": len(data), "checksum": f"md5:{md5}",
                          "links": {"self": url}})  # fmt: skip
        return json.dumps({"id": int(record), "files": files}).encode()

    def file_downloads(self) -> list[dict]:
        return [r for r in self.requests if r["path"].endswith("/content")]


def _handler(fake: FakeZenodo) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            log = {"path": self.path, "range": self.headers.get("Range"), "sent": 0}
            fake.requests.append(log)
            if match := re.fullmatch(r"/api/records/(\d+)", self.path):
                if match.group(1) not in fake.records:
                    self.send_error(404)
                    return
                body = fake.record_json(match.group(1))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            match = re.fullmatch(r"/api/records/(\d+)/files/([^/]+)/content", self.path)
            data = fake.records.get(match.group(1), {}).get(match.group(2)) if match else None
            if data is None:
                self.send_error(404)
                return
            start = 0
            wanted = self.headers.get("Range")
            if wanted and fake.range_support:
                start = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1))
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if fake.cut_after is not None:
                body = body[: fake.cut_after]
            self.wfile.write(body)
            log["sent"] = len(body)

    return Handler


@pytest.fixture
def zenodo() -> Iterator[FakeZenodo]:
    fake = FakeZenodo()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _subset_zip(tmp_path: Path, n: int, uid: str = UID) -> bytes:
    folder = tmp_path / f"made-subset{n}"
    write_scan(
        Scan(ARRAY, origin=(-5.0, 10.0, 20.0), spacing=(0.7, 0.7, 2.5)), folder / f"{uid}.mhd"
    )
    return _zip_bytes({f"subset{n}/{p.name}": p.read_bytes() for p in sorted(folder.iterdir())})


@pytest.fixture
def luna(zenodo: FakeZenodo, tmp_path: Path) -> FakeZenodo:
    """A small LUNA16 split over two records, as on Zenodo."""
    zenodo.add("3723295", "subset0.zip", _subset_zip(tmp_path, 0))
    zenodo.add("3723295", "annotations.csv", ANNOTATIONS)
    zenodo.add("3723295", "sampleSubmission.csv", b"seriesuid,coordX,coordY,coordZ,probability\n")
    zenodo.add("3723295", "candidates_V2.zip", _zip_bytes(
        {"candidates_V2/candidates_V2.csv": b"seriesuid,coordX,coordY,coordZ,class\n"}))  # fmt: skip
    zenodo.add("3723295", "evaluationScript.zip", _zip_bytes({
        "evaluationScript/annotations/annotations_excluded.csv": b"seriesuid,coordX\n",
        "evaluationScript/annotations/seriesuids.csv": UID.encode() + b"\n",
    }))  # fmt: skip
    zenodo.add("4121926", "subset7.zip", _subset_zip(tmp_path, 7, uid=UID + "7"))
    zenodo.add("4121926", "seg-lungs-LUNA16.zip", _zip_bytes({"seg-lungs-LUNA16/x.mhd": b"m"}))
    return zenodo


def test_dry_run_prints_plan_with_sizes_and_downloads_nothing(
    luna: FakeZenodo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "luna16"
    download_luna16(out, subsets=[0, 7], base_url=luna.base_url, dry_run=True, progress=False)
    printed = capsys.readouterr().out
    size0 = len(luna.records["3723295"]["subset0.zip"])
    shown = f"{size0} B" if size0 < 1000 else f"{size0 / 1000:.1f} KB"
    assert re.search(rf"subset0\.zip\s+{shown}\s+3723295\s+to download", printed)
    assert re.search(r"subset7\.zip\s+[\d.]+ K?B\s+4121926", printed)
    assert "annotations.csv" in printed and "seg-lungs" not in printed
    assert re.search(r"total [\d.]+ KB; to download [\d.]+ KB; disk needed about", printed)
    assert luna.file_downloads() == []
    assert not out.exists()


def test_full_download_gives_luna16_layout(
    luna: FakeZenodo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "luna16"
    download_luna16(out, subsets=[0, 7], lung_masks=True, base_url=luna.base_url, progress=False)
    scan = read_scan(out / "subset0" / f"{UID}.mhd")
    np.testing.assert_array_equal(scan.array, ARRAY)
    assert scan.spacing == (0.7, 0.7, 2.5)
    assert read_scan(out / "subset7" / f"{UID}7.mhd").shape == (2, 3, 4)
    assert (out / "subset0" / COMPLETE_MARKER).is_file()
    assert (out / "annotations.csv").read_bytes() == ANNOTATIONS
    for name in ("candidates_V2.csv", "annotations_excluded.csv", "seriesuids.csv"):
        assert (out / name).is_file(), name
    assert (out / "seg-lungs-LUNA16" / "x.mhd").read_bytes() == b"m"
    left = [p.name for p in out.iterdir() if p.suffix in (".zip", ".part") or p.name[0] == "."]
    assert left == []  # zips removed after extraction, no staging folders
    # a second run finds everything done and transfers nothing
    before = len(luna.file_downloads())
    capsys.readouterr()
    download_luna16(out, subsets=[0, 7], lung_masks=True, base_url=luna.base_url, progress=False)
    assert len(luna.file_downloads()) == before
    assert re.search(r"subset0\.zip .* done", capsys.readouterr().out)


def test_partial_download_is_resumed_with_range(luna: FakeZenodo, tmp_path: Path) -> None:
    out = tmp_path / "luna16"
    out.mkdir()
    data = luna.records["3723295"]["subset0.zip"]
    half = len(data) // 2
    (out / "subset0.zip.part").write_bytes(data[:half])
    download_luna16(out, subsets=[0], tables=False, base_url=luna.base_url, progress=False)
    (request,) = luna.file_downloads()
    assert request["range"] == f"bytes={half}-"
    assert request["sent"] == len(data) - half
    np.testing.assert_array_equal(read_scan(out / "subset0" / f"{UID}.mhd").array, ARRAY)


def test_server_without_range_support_restarts_cleanly(luna: FakeZenodo, tmp_path: Path) -> None:
    luna.range_support = False
    out = tmp_path / "luna16"
    out.mkdir()
    (out / "subset0.zip.part").write_bytes(b"x" * 100)  # not even a prefix of the real file
    download_luna16(out, subsets=[0], tables=False, base_url=luna.base_url, progress=False)
    (request,) = luna.file_downloads()
    assert request["range"] == "bytes=100-"
    assert request["sent"] == len(luna.records["3723295"]["subset0.zip"])
    np.testing.assert_array_equal(read_scan(out / "subset0" / f"{UID}.mhd").array, ARRAY)


def test_broken_transfer_keeps_part_and_next_run_resumes(luna: FakeZenodo, tmp_path: Path) -> None:
    out = tmp_path / "luna16"
    luna.cut_after = 300
    with pytest.raises(DownloadError, match=r"subset0\.zip.* 300 of \d+ bytes.*resume"):
        download_luna16(out, subsets=[0], tables=False, base_url=luna.base_url, progress=False)
    assert (out / "subset0.zip.part").stat().st_size == 300
    assert not (out / "subset0").exists()
    luna.cut_after = None
    download_luna16(out, subsets=[0], tables=False, base_url=luna.base_url, progress=False)
    assert luna.file_downloads()[-1]["range"] == "bytes=300-"
    assert (out / "subset0" / COMPLETE_MARKER).is_file()


def test_md5_mismatch_raises_and_moves_file_aside(luna: FakeZenodo, tmp_path: Path) -> None:
    out = tmp_path / "luna16"
    luna.bad_md5.add("annotations.csv")
    with pytest.raises(ChecksumError, match=r"annotations\.csv: md5 checksum is .*annotations\.csv\.corrupt"):  # fmt: skip
        download_luna16(out, subsets=[], base_url=luna.base_url, progress=False)
    assert (out / "annotations.csv.corrupt").read_bytes() == ANNOTATIONS
    assert not (out / "annotations.csv").exists()
    assert not (out / "annotations.csv.part").exists()
    luna.bad_md5.clear()  # the next run downloads the file afresh
    download_luna16(out, subsets=[], base_url=luna.base_url, progress=False)
    assert luna.file_downloads()[-1]["range"] is None
    assert (out / "annotations.csv").read_bytes() == ANNOTATIONS


@pytest.mark.parametrize(
    "member", ["../evil", "/etc/x", "subset0/../../evil"], ids=["dotdot", "absolute", "nested"]
)
def test_unsafe_subset_zip_writes_nothing(zenodo: FakeZenodo, tmp_path: Path, member: str) -> None:
    zenodo.add("3723295", "subset0.zip", _zip_bytes({"subset0/a.mhd": b"ok", member: b"evil"}))
    zenodo.add("4121926", "subset9.zip", _zip_bytes({"subset9/b.mhd": b"ok"}))
    out = tmp_path / "data" / "luna16"
    with pytest.raises(UnsafeArchiveError, match=r"subset0\.zip: member"):
        download_luna16(out, subsets=[0], tables=False, base_url=zenodo.base_url, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["subset0.zip"]  # nothing extracted inside
    assert not list(tmp_path.rglob("evil"))  # nothing outside


def test_not_enough_disk_is_a_clear_error(
    luna: FakeZenodo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10, 10, 10))
    with pytest.raises(DiskSpaceError, match=r"needs 0\.00 GB but .* has 0\.00 GB free"):
        download_luna16(tmp_path / "l", subsets=[0], base_url=luna.base_url, progress=False)
    assert luna.file_downloads() == []


def test_missing_subset_in_records_is_an_error(luna: FakeZenodo, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"hold no subset3\.zip .*check the base URL"):
        download_luna16(tmp_path, subsets=[3], base_url=luna.base_url, dry_run=True)


def test_unreachable_server_says_so(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="could not connect"):
        download_file("http://127.0.0.1:9/x", tmp_path / "x", timeout=2)


def test_parse_subsets() -> None:
    assert parse_subsets("all") == tuple(range(10))
    assert parse_subsets("3, 1-2") == (1, 2, 3)
    assert parse_subsets([9, 0]) == (0, 9)
    with pytest.raises(ValueError, match=r"subsets \[10\] do not exist"):
        parse_subsets("10")
    with pytest.raises(ValueError, match="cannot read 'x'"):
        parse_subsets("0,x")


def test_cli_dry_run_prints_plan(luna: FakeZenodo, tmp_path: Path) -> None:
    args = ["download", str(tmp_path / "l"), "--subsets", "0", "--lung-masks", "--dry-run",
            "--base-url", luna.base_url]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "subset0.zip" in result.output and "seg-lungs-LUNA16.zip" in result.output
    assert "dry run: nothing downloaded" in result.output
    assert luna.file_downloads() == []


def test_cli_reports_errors_in_one_line(luna: FakeZenodo, tmp_path: Path) -> None:
    luna.bad_md5.add("annotations.csv")
    args = ["download", str(tmp_path / "l"), "--subsets", "none", "--base-url", luna.base_url]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "error:" in result.output and "annotations.csv" in result.output


def test_no_extract_keeps_verified_zips(luna: FakeZenodo, tmp_path: Path) -> None:
    out = tmp_path / "luna16"
    download_luna16(out, subsets=[7], tables=False, extract=False, base_url=luna.base_url,
                    progress=False)  # fmt: skip
    assert (out / "subset7.zip").read_bytes() == luna.records["4121926"]["subset7.zip"]
    assert not (out / "subset7").exists()


def test_downloaded_but_unextracted_zip_is_verified_then_extracted(
    luna: FakeZenodo, tmp_path: Path
) -> None:
    out = tmp_path / "luna16"
    out.mkdir()
    (out / "subset0.zip").write_bytes(luna.records["3723295"]["subset0.zip"])
    download_luna16(out, subsets=[0], tables=False, base_url=luna.base_url, progress=False)
    assert luna.file_downloads() == []
    assert (out / "subset0" / COMPLETE_MARKER).is_file()
    assert not (out / "subset0.zip").exists()


def test_a_crash_while_copying_a_root_table_leaves_no_half_table(tmp_path: Path, monkeypatch):
    from nodulekit.data import download as download_module

    table = b"seriesuid,coordX,coordY,coordZ,class\n" + b"1.2.3,0,0,0,0\n" * 1000
    archive = tmp_path / "candidates_V2.zip"
    archive.write_bytes(_zip_bytes({"candidates_V2/candidates_V2.csv": table}))

    def half_then_crash(*args, **kwargs):
        source, dest = args[0], args[1]
        data = Path(source).read_bytes() if isinstance(source, (str, Path)) else source.read()
        if isinstance(dest, (str, Path)):
            Path(dest).write_bytes(data[: len(data) // 2])
        else:
            dest.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", half_then_crash)
    monkeypatch.setattr(shutil, "copyfileobj", half_then_crash)
    with pytest.raises(OSError, match="No space left"):
        download_module._extract_into(archive, tmp_path, "candidates_V2", progress=False)
    # a half table under its real name would never be replaced: the next run skips it
    assert not (tmp_path / "candidates_V2.csv").exists()
    assert not [p.name for p in tmp_path.glob(".candidates_V2.csv*")]
    monkeypatch.undo()
    shutil.rmtree(tmp_path / "candidates_V2")
    download_module._extract_into(archive, tmp_path, "candidates_V2", progress=False)
    assert (tmp_path / "candidates_V2.csv").read_bytes() == table
