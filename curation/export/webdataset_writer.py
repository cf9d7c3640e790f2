"""WebDataset shards: reproducible tars of (mp4, json, txt) samples, each shard committed atomically.

A shard is `shard-NNNNNN.tar` with its sidecar `shard-NNNNNN.json` (the keys and
report rows of its samples). The sidecar is written first and the tar renamed
into place last, so a tar under its final name is a finished shard; a rerun
skips the samples of finished shards and packs the rest into the next shards in
the same order, which gives the shards an uninterrupted run would have written.
Tar members carry fixed metadata (mtime 0, uid/gid 0, mode 0644), so the bytes
depend on the samples only.
"""
import io
import os
import re
import tarfile
import tempfile
from collections.abc import Callable

from curation.export.destination import Destination

SHARD_RE = re.compile(r"^shard-(\d{6})\.tar$")
BLOCK = 512
RECORD = 20 * BLOCK  # tarfile pads an archive to whole records


def shard_name(index: int) -> str:
    return f"shard-{index:06d}.tar"


def sidecar_name(index: int) -> str:
    return f"shard-{index:06d}.json"


def member_bytes(size: int) -> int:
    """Bytes one member takes in a tar: a header block and its data padded to whole blocks."""
    return BLOCK + -(-size // BLOCK) * BLOCK


def archive_bytes(members: int) -> int:
    """Size of a tar holding `members` bytes of members: two zero blocks at the end, padded to whole records."""
    return -(-(members + 2 * BLOCK) // RECORD) * RECORD


def finished_shards(dest: Destination) -> dict[int, dict]:
    """Sidecars of the shards whose tar is in place, by shard index."""
    names = set(dest.listdir())
    done = {}
    for name in sorted(names):
        m = SHARD_RE.match(name)
        if m and sidecar_name(int(m.group(1))) in names:
            done[int(m.group(1))] = dest.read_json(sidecar_name(int(m.group(1))))
    return done


class ShardWriter:
    """Greedy packing in sample order: a shard closes before a sample would take it past `shard_size` bytes."""

    def __init__(self, dest: Destination, shard_size: int, first_index: int,
                 on_commit: Callable[[str, list[dict]], None] | None = None):
        self.dest, self.shard_size, self.index = dest, shard_size, first_index
        self.on_commit = on_commit
        self._tmp: str | None = None
        self._tar: tarfile.TarFile | None = None
        self._bytes = 0
        self._rows: list[dict] = []
        self.committed: list[str] = []

    def add(self, key: str, members: list[tuple[str, bytes | str]], row: dict) -> str:
        """Add one sample (`members`: (extension, bytes or local file path)); returns its shard's name."""
        sizes = [len(d) if isinstance(d, bytes) else os.path.getsize(d) for _, d in members]
        need = sum(member_bytes(s) for s in sizes)
        if self._tar is not None and self._rows and archive_bytes(self._bytes + need) > self.shard_size:
            self._commit()
        if self._tar is None:
            fd, self._tmp = tempfile.mkstemp(prefix="vidcurate-shard-", suffix=".tar")
            os.close(fd)
            self._tar = tarfile.open(self._tmp, "w", format=tarfile.USTAR_FORMAT)
            self._bytes = 0
        for (ext, data), size in zip(members, sizes):
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = size, 0, 0o644, 0, 0, "", ""
            if isinstance(data, bytes):
                self._tar.addfile(info, io.BytesIO(data))
            else:
                with open(data, "rb") as f:
                    self._tar.addfile(info, f)
        self._bytes += need
        name = shard_name(self.index)
        self._rows.append(dict(row, shard=name))
        return name

    def _commit(self) -> None:
        self._tar.close()
        name = shard_name(self.index)
        self.dest.write_json(sidecar_name(self.index), {"shard": name, "bytes": os.path.getsize(self._tmp),
                                                         "samples": [r["clip_id"] for r in self._rows], "rows": self._rows})
        self.dest.put_file(self._tmp, name)  # the tar under its final name is the commit
        os.unlink(self._tmp)
        if self.on_commit:
            self.on_commit(name, self._rows)
        self.committed.append(name)
        self.index += 1
        self._tar, self._tmp, self._rows = None, None, []

    def close(self) -> None:
        """Commit the last, partly filled shard."""
        if self._tar is not None and self._rows:
            self._commit()
        elif self._tmp:
            self._tar.close()
            os.unlink(self._tmp)

    def abort(self) -> None:
        """Drop the unfinished shard (its samples are redone by the next run)."""
        if self._tar is not None:
            self._tar.close()
            os.unlink(self._tmp)
            self._tar, self._tmp, self._rows = None, None, []
