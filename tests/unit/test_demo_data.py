"""The packaged Debian demo data set: loads, is balanced and clean, and rebuilds byte for byte."""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from act_plugin.demo_data import DEBIAN_DATASET_FILE, DEBIAN_SECTIONS, load_debian_dataset
from act_plugin.demo_data import build_debian_dataset as builder

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DATA_DIR = Path(builder.__file__).resolve().parent


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return load_debian_dataset()


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def test_loads_with_the_expected_fields(rows: list[dict[str, str]]) -> None:
    assert 300 <= len(rows) <= 600
    for row in rows:
        assert list(row) == ["text", "section", "package"]
        assert all(isinstance(v, str) for v in row.values())
        assert row["section"] in DEBIAN_SECTIONS


def test_classes_are_balanced_and_all_present(rows: list[dict[str, str]]) -> None:
    counts = Counter(row["section"] for row in rows)
    assert set(counts) == set(DEBIAN_SECTIONS)
    assert len(set(counts.values())) == 1, counts
    assert 4 <= len(DEBIAN_SECTIONS) <= 6
    assert min(counts.values()) >= 50


def test_texts_are_non_trivial(rows: list[dict[str, str]]) -> None:
    for row in rows:
        text = row["text"]
        assert text == text.strip()
        assert "\n" not in text and "\t" not in text
        assert builder.MIN_LONG_CHARS < len(text) <= builder.MAX_CHARS, row
        assert len(text.split()) >= 15, row
        # the section prefix ("non-free/") is stripped and no section field leaks in
        assert "/" not in row["section"]


def test_no_duplicates(rows: list[dict[str, str]]) -> None:
    packages = [row["package"] for row in rows]
    assert len(set(packages)) == len(packages)
    texts = [_norm(row["text"]) for row in rows]
    assert len(set(texts)) == len(texts)
    starts = [" ".join(t.split()[: builder.NEAR_DUP_WORDS]) for t in texts]
    assert len(set(starts)) == len(starts), "near-duplicate descriptions"


def test_file_is_small_utf8_jsonl_and_matches_its_metadata(rows: list[dict[str, str]]) -> None:
    raw = (DATA_DIR / DEBIAN_DATASET_FILE).read_bytes()
    assert len(raw) < 300 * 1024
    assert raw.endswith(b"\n") and not raw.endswith(b"\n\n")
    raw.decode("utf-8")
    meta = json.loads((DATA_DIR / builder.META_FILE).read_text(encoding="utf-8"))
    assert meta["rows"] == len(rows)
    assert meta["sections"] == list(DEBIAN_SECTIONS)
    assert meta["class_counts"] == dict(Counter(row["section"] for row in rows))
    assert all(meta["pool_sizes"][s] >= meta["per_class"] for s in DEBIAN_SECTIONS)


def test_section_hints_fit_a_label_studio_choice() -> None:
    for value, hint in DEBIAN_SECTIONS.items():
        assert re.fullmatch(r"[a-z]+", value)
        assert 20 <= len(hint) <= 200
        assert not set(hint) & set('<>&"'), "hint must be safe in an XML attribute"


# ---------------------------------------------------------------- the builder on synthetic lists

PACKAGES = """\
Package: stargame
Source: stargame
Section: games
Description: space shooter
Description-md5: 11

Package: stargame-data
Source: stargame
Section: games
Description: space shooter (data)
Description-md5: 12

Package: nonfreegame
Section: non-free/games
Description: card game
Description-md5: 13

Package: stargame-dbg
Source: stargame
Section: games
Description: debugging symbols
Description-md5: 14

Package: oldgame
Section: games
Description: transitional package for newgame
Description-md5: 15

Package: shortgame
Section: games
Description: too short
Description-md5: 16

Package: pgthing
Section: database
Description: PostgreSQL thing
Description-md5: 21

Package: pgcopy
Section: database
Description: PostgreSQL copy of thing
Description-md5: 22

Package: sqlitething
Section: misc/database
Description: SQLite thing
Description-md5: 23

Package: editor
Section: editors
Description: text editor
Description-md5: 31
"""

LONG = (
    " {0} is a program used in tests of the Debian demo data builder, and this line\n"
    " makes its long description comfortably longer than the minimum length.\n"
)

TRANSLATIONS = (
    "Package: stargame\nDescription-md5: 11\nDescription-en: space shooter\n"
    + LONG.format("Stargame")
    + " .\n Features:\n  * lasers\n  * asteroids\n\n"
    "Package: stargame-data\nDescription-md5: 12\nDescription-en: space shooter (data)\n"
    + LONG.format("Stargame data")
    + "\n"
    "Package: nonfreegame\nDescription-md5: 13\nDescription-en: card game\n"
    + LONG.format("Nonfreegame")
    + "\n"
    "Package: stargame-dbg\nDescription-md5: 14\nDescription-en: debugging symbols\n"
    + LONG.format("Debug")
    + "\n"
    "Package: oldgame\nDescription-md5: 15\nDescription-en: transitional package for newgame\n"
    + LONG.format("Oldgame")
    + "\n"
    "Package: shortgame\nDescription-md5: 16\nDescription-en: too short\n tiny.\n\n"
    "Package: pgthing\nDescription-md5: 21\nDescription-en: PostgreSQL thing\n"
    + LONG.format("Pgthing")
    + "\n"
    "Package: pgcopy\nDescription-md5: 22\nDescription-en: PostgreSQL copy of thing\n"
    + LONG.format("Pgthing")
    + "\n"
    "Package: sqlitething\nDescription-md5: 23\nDescription-en: SQLite thing\n"
    + LONG.format("Sqlitething")
    + "\n"
    "Package: editor\nDescription-md5: 31\nDescription-en: text editor\n" + LONG.format("Editor")
)


def test_builder_cleans_filters_and_deduplicates() -> None:
    pool = builder.candidates(PACKAGES, [TRANSLATIONS], ["games", "database"])
    by_package = {c.package: c for c in pool}
    # one package per source (stargame, not stargame-data), no -dbg, no transitional, no
    # too-short text, the "non-free/" and "misc/" prefixes dropped, other sections ignored,
    # and pgthing (same long description as pgcopy) dropped as a near-duplicate
    assert sorted(by_package) == ["nonfreegame", "pgcopy", "sqlitething", "stargame"]
    assert by_package["nonfreegame"].section == "games"
    assert by_package["sqlitething"].section == "database"
    text = by_package["stargame"].text
    assert text.startswith("Space shooter. Stargame is a program")
    assert text.endswith("minimum length. Features: lasers; asteroids.")


def test_builder_is_deterministic_and_balanced() -> None:
    first = builder.build(PACKAGES, [TRANSLATIONS], sections=["games", "database"], per_class=2)
    again = builder.build(PACKAGES, [TRANSLATIONS], sections=["games", "database"], per_class=2)
    assert first.jsonl() == again.jsonl()
    assert first.pool_sha256 == again.pool_sha256
    assert Counter(c.section for c in first.rows) == {"games": 2, "database": 2}
    with pytest.raises(ValueError, match="fewer than 3"):
        builder.build(PACKAGES, [TRANSLATIONS], sections=["games", "database"], per_class=3)


def test_truncation_ends_at_a_sentence() -> None:
    long = "Synopsis\n" + "".join(f" Sentence number {i} says something.\n" for i in range(60))
    text = builder.clean_description(long)
    assert text is not None
    assert len(text) <= builder.MAX_CHARS
    assert text.endswith("says something.")


def test_main_writes_and_checks(tmp_path: Path) -> None:
    dump, trans = tmp_path / "dumpavail.txt", tmp_path / "Translation-en"
    dump.write_text(PACKAGES, encoding="utf-8")
    trans.write_text(TRANSLATIONS, encoding="utf-8")
    out = tmp_path / "out"
    args = ["--dumpavail", str(dump), "--translations", str(trans), "--output-dir", str(out)]
    # the default sections include "mail", "fonts"…: too few packages for a balanced set
    assert builder.main(args) == 2
    assert not out.exists()
    args += ["--sections", "games,database", "--per-class", "2"]
    assert builder.main([*args, "--check"]) == 1  # nothing written yet
    assert builder.main(args) == 0
    written = (out / DEBIAN_DATASET_FILE).read_text(encoding="utf-8")
    assert Counter(json.loads(line)["section"] for line in written.splitlines()) == {
        "games": 2,
        "database": 2,
    }
    assert json.loads((out / builder.META_FILE).read_text())["class_counts"] == {
        "games": 2,
        "database": 2,
    }
    assert builder.main([*args, "--check"]) == 0
    (out / DEBIAN_DATASET_FILE).write_text(written.replace("Space", "Spice"), encoding="utf-8")
    assert builder.main([*args, "--check"]) == 1


# ---------------------------------------------------------------- the real apt lists


def test_rebuilding_from_the_apt_lists_reproduces_the_file() -> None:
    """Byte for byte, when this machine's apt lists are the ones the file was built from."""
    try:
        result = builder.build_from_apt()
    except builder.AptListsUnavailableError as exc:
        pytest.skip(f"apt lists absent, cannot rebuild the demo data: {exc}")
    meta = json.loads((DATA_DIR / builder.META_FILE).read_text(encoding="utf-8"))
    if result.pool_sha256 != meta["pool_sha256"]:
        pytest.skip(
            "these apt lists are not the ones the file was built from "
            f"(built from {meta['built_from']}, here {result.sources}; candidate pool "
            f"{result.pool_sha256[:12]} != {meta['pool_sha256'][:12]})"
        )
    assert result.jsonl() == (DATA_DIR / DEBIAN_DATASET_FILE).read_text(encoding="utf-8")
    assert result.meta() == (DATA_DIR / builder.META_FILE).read_text(encoding="utf-8")


def test_the_data_file_is_declared_as_package_data() -> None:
    """A wheel (PyPI, the Docker image) carries the JSONL only if pyproject declares it."""
    pyproject = tomllib.loads((DATA_DIR.parents[2] / "pyproject.toml").read_text("utf-8"))
    patterns = pyproject["tool"]["setuptools"].get("package-data", {}).get("act_plugin", [])
    assert any(fnmatch.fnmatch(f"demo_data/{DEBIAN_DATASET_FILE}", p) for p in patterns), (
        "add 'demo_data/*.jsonl' to [tool.setuptools.package-data] act_plugin in pyproject.toml"
    )
