"""The knowledge base shipped with ipqa: named collections of bundled files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from corpus.documents import LoadReport, load_folder
from corpus.errors import UnknownCollection

DEFAULT_COLLECTION = "policies"


@dataclass(frozen=True)
class Collection:
    name: str
    description: str
    origin: str
    folder: Path
    sources: dict[str, dict[str, str]]  # file name -> where it came from (+ sha256)


@lru_cache(maxsize=1)
def _manifest() -> dict:
    return json.loads((resources.files("corpus") / "SOURCES.json").read_text(encoding="utf-8"))


def bundled_collections() -> dict[str, Collection]:
    """Collections shipped in the package: "policies" (the default) and "laws"."""
    root = Path(str(resources.files("corpus")))
    return {
        name: Collection(name, entry["description"], entry["origin"], root / name, entry["files"])
        for name, entry in _manifest().items()
    }


def get_collection(name: str) -> Collection:
    collections = bundled_collections()
    if name not in collections:
        raise UnknownCollection(name, list(collections))
    return collections[name]


def load_collection(name: str = DEFAULT_COLLECTION) -> LoadReport:
    """Load every document of a bundled collection."""
    collection = get_collection(name)
    return load_folder(collection.folder, collection=name, recursive=False)
