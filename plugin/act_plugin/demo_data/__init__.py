"""Demo data shipped inside the package, so a demo needs no download.

``debian_packages.jsonl``: Debian package descriptions labeled by their archive section, a real
text-classification set built from the apt lists by ``build_debian_dataset.py`` (see README.md
beside this file for its source, licence and how it was built).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Final

DEBIAN_DATASET_FILE: Final = "debian_packages.jsonl"

# The labels, in display order, each with a short hint for a person (usable as Label Studio's
# <Choice value="games" hint="..."/>). The keys are Debian archive section names.
DEBIAN_SECTIONS: Final[dict[str, str]] = {
    "games": "Games and amusements: arcade, board, card, puzzle, strategy and adventure games, "
    "their data files and launchers.",
    "science": "Scientific software: physics, chemistry, biology, astronomy, geography, "
    "medicine and the analysis of lab or observation data.",
    "sound": "Audio and music: players, recorders, editors, synthesizers, codecs, MIDI tools "
    "and sound servers.",
    "database": "Databases: SQL and NoSQL servers, clients, drivers, extensions and data "
    "loading or replication tools.",
    "fonts": "Fonts: typefaces for scripts and languages, and tools to edit, convert or "
    "inspect font files.",
    "mail": "E-mail: mail servers (MTAs), mail readers, filters, spam checkers, mailing-list "
    "managers and POP/IMAP tools.",
}


def load_debian_dataset() -> list[dict[str, str]]:
    """The packaged rows, in file order: ``{"text", "section", "package"}`` each."""
    raw = resources.files(__name__).joinpath(DEBIAN_DATASET_FILE).read_text(encoding="utf-8")
    return [json.loads(line) for line in raw.splitlines() if line.strip()]
