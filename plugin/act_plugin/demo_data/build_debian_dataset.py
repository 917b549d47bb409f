"""Build ``debian_packages.jsonl``: Debian package descriptions labeled by archive section.

A real text-classification data set that needs no download beyond the apt lists a Debian
machine already has. The long descriptions live in the ``Translation-en`` lists, which Debian's
container images do not fetch (``Acquire::Languages "none"``), so fetch them first::

    apt-get update -o Acquire::Languages=en
    python -m act_plugin.demo_data.build_debian_dataset            # rewrites the packaged file
    python -m act_plugin.demo_data.build_debian_dataset --check    # exit 1 if it would change

Given the same apt lists the output is the same byte for byte: no clock, no randomness other
than a SHA-256 ranking under a fixed seed, and a fixed order.

How a row is made:

1. ``apt-cache dumpavail`` gives each package's ``Section`` (a prefix such as ``non-free/`` or
   ``contrib/`` is dropped), ``Source`` and ``Description-md5``; the ``Translation-en`` lists
   (found with ``apt-get indextargets``, read with ``apt-helper cat-file``) give the full
   description for that md5.
2. Only packages of the sections in ``DEBIAN_SECTIONS`` are kept; debug, documentation,
   transitional and dummy packages are dropped.
3. Text: the synopsis as a sentence, then the long description's first paragraphs (bullet lists
   folded into ``a; b; c``) up to about ``TARGET_CHARS``, cut at a sentence end below
   ``MAX_CHARS``. Descriptions whose long part is under ``MIN_LONG_CHARS`` are dropped.
4. One package per source package (the one named like its source, else the shortest name), so a
   family such as ``fonts-noto-*`` or ``virtuoso-*`` gives one row, not thirty near-copies. Then
   exact duplicates and near-duplicates (long descriptions with the same first
   ``NEAR_DUP_WORDS`` words) are dropped, keeping the first package by name.
5. Each section's pool is ranked by SHA-256 of ``SEED`` and the package name; the first
   ``per_class`` of each section are kept, and the rows are ordered by another such hash.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from act_plugin.demo_data import DEBIAN_DATASET_FILE, DEBIAN_SECTIONS

SEED = "label-studio-act/debian-demo/v1"
PER_CLASS = 60
MIN_LONG_CHARS = 80
TARGET_CHARS = 320
MAX_CHARS = 600
MAX_PARAGRAPHS = 3
NEAR_DUP_WORDS = 12
META_FILE = "debian_packages.source.json"
APT_HELPER = "/usr/lib/apt/apt-helper"
APT_EN = ("-o", "Acquire::Languages=en")

_EXCLUDED_NAME = re.compile(r"-(dbg|dbgsym|doc|docs)$")
_EXCLUDED_SYNOPSIS = re.compile(r"\b(transitional|dummy)\b", re.IGNORECASE)
_BULLET = re.compile(r"^(?:[*+\-o•]|\d+[.)])\s+(.*)$")
_WORD = re.compile(r"[a-z0-9]+")


class AptListsUnavailableError(RuntimeError):
    """The machine has no usable apt lists (no apt, never updated, or no Translation-en)."""


@dataclass(frozen=True)
class Candidate:
    package: str
    section: str
    source: str
    text: str

    def row(self) -> dict[str, str]:
        return {"text": self.text, "section": self.section, "package": self.package}


@dataclass(frozen=True)
class Build:
    rows: list[Candidate]
    pool: dict[str, int]
    pool_sha256: str
    sources: list[str]
    sections: list[str]
    per_class: int

    def jsonl(self) -> str:
        return "".join(json.dumps(c.row(), ensure_ascii=False) + "\n" for c in self.rows)

    def class_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.sections, 0)
        for c in self.rows:
            counts[c.section] += 1
        return counts

    def meta(self) -> str:
        """Provenance, without a date, so that it too is reproducible."""
        meta = {
            "built_from": self.sources,
            "sections": self.sections,
            "seed": SEED,
            "per_class": self.per_class,
            "rows": len(self.rows),
            "class_counts": self.class_counts(),
            "pool_sizes": self.pool,
            "pool_sha256": self.pool_sha256,
        }
        return json.dumps(meta, indent=2) + "\n"


# ---------------------------------------------------------------- reading the apt lists


def parse_deb822(text: str) -> Iterator[dict[str, str]]:
    """Stanzas of a Packages / Translation file; continuation lines keep their newline."""
    record: dict[str, str] = {}
    key: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if record:
                yield record
            record, key = {}, None
        elif line[0] in " \t":
            if key is not None:
                record[key] += "\n" + line
        else:
            key, _, value = line.partition(":")
            record[key] = value.strip()
    if record:
        yield record


def _run(args: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(args), capture_output=True, check=True)
    except FileNotFoundError as exc:
        raise AptListsUnavailableError(f"{args[0]} is not installed") from exc
    except subprocess.CalledProcessError as exc:
        err = exc.stderr.decode(errors="replace").strip()
        raise AptListsUnavailableError(f"`{' '.join(args)}` failed: {err}") from exc
    return done.stdout.decode("utf-8", errors="replace")


def read_apt_lists() -> tuple[str, list[str], list[str]]:
    """``apt-cache dumpavail``, the Translation-en texts, and which lists they came from."""
    if shutil.which("apt-cache") is None or shutil.which("apt-get") is None:
        raise AptListsUnavailableError("apt-cache / apt-get not found (not a Debian system)")
    packages = _run(["apt-cache", "dumpavail"])
    if "\nPackage:" not in "\n" + packages:
        raise AptListsUnavailableError("apt-cache dumpavail lists no package: run apt-get update")
    listed = _run(
        [
            "apt-get",
            *APT_EN,
            "indextargets",
            "--format",
            "$(FILENAME)",
            "Created-By: Translations",
            "Language: en",
        ]
    )
    files = sorted(Path(line) for line in listed.splitlines() if line.strip())
    files = [f for f in files if f.exists()]
    if not files:
        raise AptListsUnavailableError(
            "no Translation-en apt lists (they hold the long descriptions): "
            "run `apt-get update -o Acquire::Languages=en`"
        )
    if not Path(APT_HELPER).exists():
        raise AptListsUnavailableError(f"{APT_HELPER} not found")
    translations = [_run([APT_HELPER, "cat-file", str(f)]) for f in files]
    sources = sorted(
        set(
            _run(
                [
                    "apt-get",
                    "indextargets",
                    "--format",
                    "$(ORIGIN) $(CODENAME) $(COMPONENT) $(ARCHITECTURE)",
                    "Identifier: Packages",
                ]
            ).splitlines()
        )
        - {""}
    )
    return packages, translations, sources


# ---------------------------------------------------------------- cleaning


def _render_paragraph(lines: Iterable[str]) -> str:
    out = ""
    previous_item = False
    for raw in lines:
        line = " ".join(raw.split())
        if not line:
            continue
        match = _BULLET.match(line)
        is_item = match is not None
        if match is not None:
            line = match.group(1)
        if not out:
            out = line
        elif is_item and previous_item and not out.endswith(_ENDS_SENTENCE):
            out += "; " + line
        else:
            out += " " + line
        previous_item = is_item
    return out


_ENDS_SENTENCE = (".", "!", "?", ":", ";", ".)", '."')


def _sentence(text: str, *, capitalize: bool = False) -> str:
    """Ending in a full stop unless it already ends a sentence (names keep their case)."""
    text = text.strip()
    if not text:
        return ""
    if capitalize:
        text = text[0].upper() + text[1:]
    return text if text.endswith(_ENDS_SENTENCE) else text + "."


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "), cut.rfind(".) "))
    if end >= limit // 2:
        return cut[: end + 1].rstrip()
    return cut[: cut.rfind(" ")].rstrip(" ,;:") + "…"


def clean_description(description: str) -> str | None:
    """Synopsis + the first paragraphs of the long description, or None when too short."""
    lines = description.split("\n")
    synopsis = _sentence(" ".join(lines[0].split()), capitalize=True)
    paragraphs: list[list[str]] = [[]]
    for line in lines[1:]:
        body = line[1:] if line.startswith(" ") else line
        if body.strip() == ".":
            paragraphs.append([])
        else:
            paragraphs[-1].append(body)
    long_text = ""
    for para in [p for p in paragraphs if any(x.strip() for x in p)][:MAX_PARAGRAPHS]:
        rendered = _render_paragraph(para)
        long_text = f"{_sentence(long_text)} {rendered}" if long_text else rendered
        if len(long_text) >= TARGET_CHARS:
            break
    if len(long_text) < MIN_LONG_CHARS or not synopsis:
        return None
    return _truncate(f"{synopsis} {_sentence(long_text)}", MAX_CHARS)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


# ---------------------------------------------------------------- selection


def candidates(
    packages_text: str, translation_texts: Iterable[str], sections: Iterable[str]
) -> list[Candidate]:
    """The cleaned, de-duplicated pool of the wanted sections, sorted by package name."""
    wanted = set(sections)
    long_descriptions: dict[str, str] = {}
    for text in translation_texts:
        for rec in parse_deb822(text):
            md5, desc = rec.get("Description-md5"), rec.get("Description-en")
            if md5 and desc:
                long_descriptions.setdefault(md5, desc)

    per_source: dict[str, list[Candidate]] = defaultdict(list)
    body_start: dict[str, str] = {}  # package -> first words of its long description
    for rec in parse_deb822(packages_text):
        package = rec.get("Package", "")
        section = rec.get("Section", "").rsplit("/", 1)[-1]
        if not package or section not in wanted or _EXCLUDED_NAME.search(package):
            continue
        description = long_descriptions.get(rec.get("Description-md5", ""))
        if description is None:
            description = rec.get("Description", "")  # archives that inline long descriptions
        if _EXCLUDED_SYNOPSIS.search(description.split("\n", 1)[0]):
            continue
        text = clean_description(description)
        if text is None:
            continue
        source = (rec.get("Source") or package).split()[0]
        per_source[source].append(Candidate(package, section, source, text))
        synopsis = _sentence(" ".join(description.split("\n", 1)[0].split()), capitalize=True)
        body_start[package] = " ".join(_words(text[len(synopsis) :])[:NEAR_DUP_WORDS])

    chosen = [
        min(group, key=lambda c: (c.package != c.source, len(c.package), c.package))
        for group in per_source.values()
    ]
    pool: list[Candidate] = []
    seen_full: set[str] = set()
    seen_start: set[str] = set()
    for cand in sorted(chosen, key=lambda c: c.package):
        full, start = " ".join(_words(cand.text)), body_start[cand.package]
        if full in seen_full or start in seen_start:
            continue
        seen_full.add(full)
        seen_start.add(start)
        pool.append(cand)
    return pool


def _rank(*parts: str) -> str:
    return hashlib.sha256("\0".join((SEED, *parts)).encode()).hexdigest()


def pool_sha256(pool: Iterable[Candidate]) -> str:
    digest = hashlib.sha256()
    for cand in sorted(pool, key=lambda c: c.package):
        digest.update(json.dumps(cand.row(), ensure_ascii=False, sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def select(pool: Sequence[Candidate], sections: Sequence[str], per_class: int) -> list[Candidate]:
    """``per_class`` rows of each section, ranked by a seeded hash, in a seeded-hash order."""
    by_section: dict[str, list[Candidate]] = defaultdict(list)
    for cand in pool:
        by_section[cand.section].append(cand)
    rows: list[Candidate] = []
    for section in sections:
        group = sorted(by_section[section], key=lambda c: _rank("pick", c.package))
        if len(group) < per_class:
            raise ValueError(
                f"section {section!r} has {len(group)} usable packages, fewer than {per_class}"
            )
        rows.extend(group[:per_class])
    return sorted(rows, key=lambda c: _rank("order", c.package))


def build(
    packages_text: str,
    translation_texts: Iterable[str],
    *,
    sections: Sequence[str] = tuple(DEBIAN_SECTIONS),
    per_class: int = PER_CLASS,
    sources: Sequence[str] = (),
) -> Build:
    pool = candidates(packages_text, translation_texts, sections)
    sizes: dict[str, int] = defaultdict(int)
    for cand in pool:
        sizes[cand.section] += 1
    return Build(
        rows=select(pool, sections, per_class),
        pool={s: sizes[s] for s in sections},
        pool_sha256=pool_sha256(pool),
        sources=list(sources),
        sections=list(sections),
        per_class=per_class,
    )


def build_from_apt(
    *, sections: Sequence[str] = tuple(DEBIAN_SECTIONS), per_class: int = PER_CLASS
) -> Build:
    """Build from this machine's apt lists; raises AptListsUnavailableError without them."""
    packages, translations, sources = read_apt_lists()
    return build(packages, translations, sections=sections, per_class=per_class, sources=sources)


# ---------------------------------------------------------------- command line


def _outputs(result: Build, out_dir: Path) -> Mapping[Path, str]:
    return {out_dir / DEBIAN_DATASET_FILE: result.jsonl(), out_dir / META_FILE: result.meta()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m act_plugin.demo_data.build_debian_dataset",
        description="Build the Debian package-section demo data set from the local apt lists.",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="where to write %(default)s/" + DEBIAN_DATASET_FILE + " and " + META_FILE,
    )
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    parser.add_argument(
        "--sections",
        default=",".join(DEBIAN_SECTIONS),
        help="comma-separated Debian sections (default: %(default)s)",
    )
    parser.add_argument(
        "--dumpavail", type=Path, help="read this `apt-cache dumpavail` output instead of apt"
    )
    parser.add_argument(
        "--translations",
        type=Path,
        action="append",
        default=[],
        help="a decompressed Translation-en file (repeatable; with --dumpavail)",
    )
    parser.add_argument(
        "--check", action="store_true", help="compare with the files instead of writing them"
    )
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]

    try:
        if args.dumpavail is not None:
            result = build(
                args.dumpavail.read_text(encoding="utf-8", errors="replace"),
                [p.read_text(encoding="utf-8", errors="replace") for p in args.translations],
                sections=sections,
                per_class=args.per_class,
                sources=[args.dumpavail.name, *(p.name for p in args.translations)],
            )
        else:
            result = build_from_apt(sections=sections, per_class=args.per_class)
    except (AptListsUnavailableError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    outputs = _outputs(result, args.output_dir)
    if args.check:
        stale = [p for p, text in outputs.items() if not p.exists() or p.read_text("utf-8") != text]
        for path in stale:
            print(f"differs: {path}", file=sys.stderr)
        return 1 if stale else 0
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
    print(
        f"wrote {len(result.rows)} rows to {args.output_dir / DEBIAN_DATASET_FILE}: "
        f"{result.class_counts()}"
    )
    print(f"usable packages per section: {result.pool}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
