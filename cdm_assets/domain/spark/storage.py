"""Tables as Parquet directories, through Hadoop's file system API: a local folder,
HDFS or an object store all read and write the same way.

A table is `<root>/<schema>/<table>/`. A new version is written beside it under a
staging name and swapped in by rename: the old directory is renamed aside, the new
one into place, and the old one deleted. A failed write leaves the table as it was.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from cdm_assets.domain.sql import PROCESS_TOKEN, STAGING_PREFIX

# Files and folders whose names start with `_` or `.` are hidden from Spark's and
# DuckDB's Parquet readers: the staging and old versions of tables live under them.
_ASIDE = "_aside"
SCRATCH_FOLDER = "_scratch"  # each connection's scratch tables, in a folder of its own


@dataclass
class ParquetStorage:
    spark: object  # pyspark.sql.SparkSession
    root: str

    def __post_init__(self) -> None:
        jvm = self.spark._jvm  # type: ignore[attr-defined]
        self._path = jvm.org.apache.hadoop.fs.Path
        self._fs = self._path(self.root).getFileSystem(self.spark._jsc.hadoopConfiguration())  # type: ignore[attr-defined]
        self._fs.mkdirs(self._path(self.root))

    def table_path(self, schema: str, name: str) -> str:
        return f"{self.root}/{schema}/{name}"

    def exists(self, path: str) -> bool:
        return bool(self._fs.exists(self._path(path)))

    def make_folder(self, path: str) -> None:
        self._fs.mkdirs(self._path(path))

    def folders(self, path: str) -> list[str]:
        """The names of the folders in `path` that hold a table or a schema: staging tables
        included, the versions set aside and the connections' scratch folders not."""
        if not self.exists(path):
            return []
        return sorted(
            name
            for status in self._fs.listStatus(self._path(path))
            if status.isDirectory()
            and not (name := status.getPath().getName()).startswith(".")
            and name not in (_ASIDE, SCRATCH_FOLDER)
        )

    def staging_path(self, schema: str, name: str) -> str:
        """A fresh hidden folder beside `<schema>/<name>` to write a new version into."""
        return f"{self.root}/{schema}/{_ASIDE}/{STAGING_PREFIX}{name}_{PROCESS_TOKEN}_{uuid.uuid4().hex[:8]}"

    def swap_in(self, staging: str, target: str) -> None:
        """Put the directory `staging` in the place of `target` (created if missing)."""
        old = None
        if self.exists(target):
            old = f"{target.rsplit('/', 1)[0]}/{_ASIDE}/old_{uuid.uuid4().hex}"
            self._fs.mkdirs(self._path(old.rsplit("/", 1)[0]))
            self._rename(target, old)
        else:
            self._fs.mkdirs(self._path(target.rsplit("/", 1)[0]))
        try:
            self._rename(staging, target)
        except BaseException:
            if old is not None:
                self._rename(old, target)
            raise
        if old is not None:
            self.delete(old)

    def rename(self, source: str, target: str) -> None:
        if self.exists(target):
            raise FileExistsError(f"{target}: a table of that name exists")
        self._rename(source, target)

    def write_text(self, path: str, text: str) -> None:
        stream = self._fs.create(self._path(path), True)
        try:
            stream.write(bytearray(text.encode()))
        finally:
            stream.close()

    def read_text(self, path: str) -> str:
        stream = self._fs.open(self._path(path))
        try:
            reader = self.spark._jvm.java.io.BufferedReader(self.spark._jvm.java.io.InputStreamReader(stream, "UTF-8"))  # type: ignore[attr-defined]
            lines = []
            while (line := reader.readLine()) is not None:
                lines.append(line)
            return "\n".join(lines)
        finally:
            stream.close()

    def delete(self, path: str) -> None:
        self._fs.delete(self._path(path), True)

    def _rename(self, source: str, target: str) -> None:
        if not self._fs.rename(self._path(source), self._path(target)):
            raise OSError(f"could not rename {source} to {target}")
