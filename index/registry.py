"""Where a knowledge base can live, by name: each kind of location and the stores it writes.

    folder      a folder on this machine       catalog "sqlite", vectors "faiss", keywords "bm25-segments"
                (index.build writes it, index.folder owns it)
    postgresql  a PostgreSQL database with     catalog "postgresql", vectors "pgvector",
                pgvector, shared by servers    keywords "postgresql-bm25" (index.pg, index.pg_write)

A location names its kind: a ``postgresql://`` URL, or else a folder path. Every manifest records
the names of the stores that wrote it (``store``); opening checks them against its kind, so a
knowledge base written by stores this program does not have is refused in Chinese instead of read
wrongly. A new kind registers here with the same four parts (``register``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from corpus.errors import IndexMismatch
from index.manifest import LOCAL_STORE, RENAMED_STORES
from index.pg import is_database_url, safe_url


@dataclass(frozen=True)
class StoreKind:
    name: str
    label: str  # for people, in Chinese
    stores: Mapping[str, str]  # role (catalog, vectors, keywords) -> store name, as manifests record them
    accepts: Callable[[object], bool]  # does this location belong to the kind?
    update: Callable[..., object]  # update_index(location, **index.build.update_index's arguments)
    disk_bytes: Callable[[object], int]


def _update_folder(location, **kwargs):
    from index.build import update_index

    return update_index(location, **kwargs)


def _folder_bytes(location) -> int:
    return sum(p.stat().st_size for p in Path(location).rglob("*") if p.is_file())


def _update_database(location, **kwargs):
    from index.pg_write import update_database

    return update_database(str(location), **kwargs)


def _database_bytes(location) -> int:
    from index.pg import disk_bytes

    return disk_bytes(str(location))


KINDS: dict[str, StoreKind] = {}


def register(kind: StoreKind) -> None:
    KINDS[kind.name] = kind


def kind_of(location) -> StoreKind:
    """The kind of the location: the first registered one that accepts it, folders last."""
    for kind in sorted(KINDS.values(), key=lambda k: k.name == "folder"):
        if kind.accepts(location):
            return kind
    raise ValueError(f"no store kind for {location!r}")


def check_stores(manifest: dict, kind: StoreKind, location) -> None:
    """Refuse a knowledge base whose manifest names stores other than its kind's (an index written
    by another program or a later ipqa). A manifest without names was written by a folder."""
    recorded = manifest.get("store") or LOCAL_STORE
    unknown = {role: name for role, name in recorded.items() if kind.stores.get(role) != RENAMED_STORES.get(name, name)}
    if unknown:
        names = "、".join(f"{role}={name}" for role, name in unknown.items())
        where = safe_url(str(location)) if kind.name == "postgresql" else location
        raise IndexMismatch(f"索引使用的存储（{names}）不是本程序的{kind.label}所支持的"
                            f"（{'、'.join(kind.stores.values())}）", where)


register(StoreKind("folder", "本地文件夹", dict(LOCAL_STORE), lambda location: not is_database_url(location),
                   _update_folder, _folder_bytes))
register(StoreKind("postgresql", "PostgreSQL 数据库",
                   {"catalog": "postgresql", "vectors": "pgvector", "keywords": "postgresql-bm25"},
                   is_database_url, _update_database, _database_bytes))
