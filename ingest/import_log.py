"""The record of imports (`import_log`, migration 0021; `./qiwang import-log`).

Every import that writes leaves one row, in its own transaction: which file (name and SHA-256 of
its bytes, or of a folder's geodata files in name order), who (the account, or the CLI's
`operator:<OS user>`), how (--mode), what (rows inserted, updated and deleted per layer), where
from (CRS declared and used, the transformation and its accuracy in metres, None when unknown)
and with which mapping (the --mapping file's text and the --set values). A dry run or a refused
import writes nothing, here neither.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from accounts import audit

CHUNK = 1 << 20


def sha256(path: Path, members: list[Path] | None = None) -> str:
    """SHA-256 (hex) of a file's bytes, or of `members` (a folder's files) read in that order,
    each preceded by its name so that renaming a member changes the digest."""
    digest = hashlib.sha256()
    for member in members if members is not None else [path]:
        if members is not None:
            digest.update(member.name.encode() + b"\0")
        with member.open("rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Entry:
    """One row of the import log."""

    id: int
    imported_at: datetime
    account: str
    file_name: str
    sha256: str
    mode: str
    enterprises: list[str]
    counts: list[dict[str, Any]]
    crs: list[dict[str, Any]]
    mapping: dict[str, Any]
    network_version: int | None

    def lines(self) -> list[str]:
        """The entry for a person: a heading line, then one line per layer."""
        head = (f"#{self.id} {self.imported_at:%Y-%m-%d %H:%M:%S%z} {self.account} --mode {self.mode} "
                f"{self.file_name} (SHA-256 {self.sha256[:16]}…), enterprise {', '.join(self.enterprises) or '-'}"
                + (f", network version {self.network_version}" if self.network_version is not None else ""))
        out = [head]
        crs_of = {item["layer"]: item for item in self.crs}
        for layer in self.counts:
            changes = ", ".join(f"{layer[k]:,} {k}" for k in ("inserted", "updated", "deleted") if layer.get(k))
            crs = crs_of.get(layer["layer"])
            where = f"; {crs['transformation']}" if crs and crs.get("transformation") else ""
            out.append(f"  {layer['layer']} → {layer['table']}: {changes or 'nothing changed'}{where}")
        if self.mapping.get("file") or self.mapping.get("set"):
            given = [f"--mapping {self.mapping['file']}"] if self.mapping.get("file") else []
            given += [f"--set {table}.{column}={value}" for table, values in (self.mapping.get("set") or {}).items()
                      for column, value in values.items()]
            out.append(f"  mapping: {' '.join(given)}")
        return out


def record(conn: Connection, *, file_name: str, digest: str, mode: str, enterprises: list[str],
           counts: list[dict[str, Any]], crs: list[dict[str, Any]], mapping: dict[str, Any]) -> int:
    """Append one import to the log in `conn`'s transaction (the import's own); returns its id.

    Parameters
    ----------
    file_name, digest
        The file as the user named it, and sha256() of it.
    mode
        insert, update, upsert or replace-enterprise.
    enterprises
        The enterprises whose features the import wrote.
    counts
        Per layer: {"layer", "table", "inserted", "updated", "deleted"} (row counts).
    crs
        Per layer: {"layer", "declared", "used", "transformation", "accuracy_m"} (metres; None: unknown).
    mapping
        {"file": name or None, "text": its YAML or None, "set": {table: {column: value}}}.
    """
    account = audit.default_actor(conn) or conn.execute(text("SELECT current_user")).scalar_one()
    return int(conn.execute(text(
        "INSERT INTO import_log (account, file_name, sha256, mode, enterprises, counts, crs, mapping, network_version) "
        "VALUES (:account, :file, :sha, :mode, :enterprises, CAST(:counts AS jsonb), CAST(:crs AS jsonb), "
        "CAST(:mapping AS jsonb), (SELECT version FROM network_version)) RETURNING id"),
        {"account": account, "file": file_name, "sha": digest, "mode": mode, "enterprises": sorted(enterprises),
         "counts": json.dumps(counts, ensure_ascii=False), "crs": json.dumps(crs, ensure_ascii=False),
         "mapping": json.dumps(mapping, ensure_ascii=False)}).scalar_one())


def entries(conn: Connection, limit: int = 20) -> list[Entry]:
    """The latest `limit` imports, newest first."""
    rows = conn.execute(text(
        "SELECT id, imported_at, account, file_name, sha256, mode, enterprises, counts, crs, mapping, network_version "
        "FROM import_log ORDER BY id DESC LIMIT :n"), {"n": limit}).all()
    return [Entry(*row) for row in rows]
