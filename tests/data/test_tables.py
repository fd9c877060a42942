"""LUNA16 tables: column names, numbers, and errors that name the line."""

from __future__ import annotations

import pandas as pd
import pytest

from nodulekit.data import read_annotations, read_candidates, read_seriesuids
from nodulekit.data.tables import check_known_uids
from nodulekit.errors import TableError

HEADER = "seriesuid,coordX,coordY,coordZ,diameter_mm\n"


def test_annotations_read_as_floats_with_uids_as_text(tmp_path):
    path = tmp_path / "annotations.csv"
    path.write_text(HEADER + "1.2.3,-128.5,-175.3,-298.4,5.65\n1.2.3, 103.8,-211.9,-227.1,4.2\n")
    table = read_annotations(path)
    assert list(table.columns) == ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
    assert table["coordX"].tolist() == [-128.5, 103.8]
    assert table["seriesuid"].tolist() == ["1.2.3", "1.2.3"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "1.2.3,1,2,,5\n",
            r"column coordZ must hold numbers; line 2 has no number \(empty or NaN\)",
        ),
        ("1.2.3,1,2,3,5\n1.2.3,1,abc,3,5\n", r"column coordY must hold numbers; line 3 has 'abc'"),
        ("1.2.3,1,2,3,NaN\n", r"column diameter_mm must hold numbers; line 2 has no number"),
        ("1.2.3,1,2,inf,5\n", r"column coordZ must hold numbers; line 2"),
        (",1,2,3,5\n", r"empty seriesuid on line\(s\) \[2\]"),
    ],
)
def test_bad_values_name_the_file_column_and_line(tmp_path, body, message):
    path = tmp_path / "annotations.csv"
    path.write_text(HEADER + body)
    with pytest.raises(TableError, match=message) as info:
        read_annotations(path)
    assert str(path) in str(info.value)


def test_missing_column_lists_what_was_found_and_the_expected_header(tmp_path):
    path = tmp_path / "annotations.csv"
    path.write_text("seriesuid,x,y,z,diameter_mm\n1.2.3,1,2,3,4\n")
    with pytest.raises(
        TableError, match=r"missing column\(s\) \['coordX'.*found \['seriesuid', 'x'"
    ):
        read_annotations(path)


def test_candidates_class_must_be_zero_or_one(tmp_path):
    path = tmp_path / "candidates_V2.csv"
    path.write_text("seriesuid,coordX,coordY,coordZ,class\n1.2,1,2,3,0\n1.2,1,2,3,2\n")
    with pytest.raises(TableError, match="class must be 0 or 1; line 3 has 2"):
        read_candidates(path)
    path.write_text("seriesuid,coordX,coordY,coordZ,class\n1.2,1,2,3,0\n1.2,1,2,3,1\n")
    assert read_candidates(path)["class"].tolist() == [0, 1]


def test_seriesuids_have_no_header_but_tolerate_one(tmp_path):
    path = tmp_path / "seriesuids.csv"
    path.write_text("1.2.3\n1.2.4\n\n1.2.3\n")
    assert read_seriesuids(path) == ["1.2.3", "1.2.4"]
    path.write_text("seriesuid\n1.2.3\n")
    assert read_seriesuids(path) == ["1.2.3"]


def test_unknown_uid_names_the_line_and_a_close_match():
    table = pd.DataFrame({"seriesuid": ["1.2.3.4", "1.2.3.44"]})
    with pytest.raises(
        TableError,
        match=r"1 seriesuid\(s\) not in seriesuids.csv, e.g. 1\.2\.3\.44 on line 3 \(close: 1\.2\.3\.4\)",
    ):
        check_known_uids(table, ["1.2.3.4"], source="a.csv")
