"""Extract plain-text novels from Debian's `r-cran-janeaustenr` package (one-time data prep).

    apt-get download r-cran-janeaustenr
    dpkg-deb -x r-cran-janeaustenr_*.deb pkg
    python tools/extract_janeaustenr.py pkg/usr/lib/R/site-library/janeaustenr ctxagent/evaluation/data

R's lazy-load database (data/Rdata.rdx + Rdata.rdb) stores each object as a
zlib-compressed R serialization stream. This reader understands just the
subset those streams use (character vectors, pairlists, symbols, attributes),
so no R or pyreadr installation is needed. The novels are public domain.
"""

from __future__ import annotations

import gzip
import struct
import sys
import zlib
from pathlib import Path

NILVALUE, REFSXP, GLOBALENV, EMPTYENV, BASEENV, MISSINGARG, BASENAMESPACE = 254, 255, 253, 242, 241, 251, 247


class RReader:
    """A minimal reader for R's XDR serialization format (versions 2 and 3)."""

    def __init__(self, data: bytes) -> None:
        if data[:2] != b"X\n":
            raise ValueError(f"not an XDR R serialization stream: {data[:2]!r}")
        self.data, self.pos, self.refs = data, 2, []
        version = self.int()
        self.int(), self.int()  # writer and minimal reader R versions
        if version == 3:
            self.bytes(self.int())  # native encoding name

    def int(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return value

    def bytes(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind in (NILVALUE, GLOBALENV, EMPTYENV, BASEENV, MISSINGARG, BASENAMESPACE):
            return None
        if kind == REFSXP:
            return self.refs[(flags >> 8) - 1]
        if kind == 1:  # SYMSXP
            name = self.item()
            self.refs.append(name)
            return name
        if kind in (2, 6):  # LISTSXP / LANGSXP: a pairlist -> dict
            out = {}
            while True:
                _attr = self.item() if has_attr else None  # read to move past it; pairlist attributes are not kept
                tag = self.item() if has_tag else None
                out[tag if tag is not None else len(out)] = self.item()
                nxt = self.int()
                self.pos -= 4
                if nxt & 0xFF != kind:
                    self.item()  # the terminating NILVALUE
                    return out
                flags = self.int()
                has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind == 9:  # CHARSXP
            n = self.int()
            return None if n == -1 else self.bytes(n).decode("utf-8", errors="replace")
        if kind in (10, 13):  # LGLSXP, INTSXP
            n = self.int()
            value = list(struct.unpack_from(f">{n}i", self.data, self.pos))
            self.pos += 4 * n
        elif kind == 14:  # REALSXP
            n = self.int()
            value = list(struct.unpack_from(f">{n}d", self.data, self.pos))
            self.pos += 8 * n
        elif kind in (16, 19):  # STRSXP, VECSXP
            value = [self.item() for _ in range(self.int())]
        else:
            raise ValueError(f"unsupported R object type {kind} at byte {self.pos}")
        if has_attr:
            attrs = self.item()
            if kind == 19 and isinstance(attrs, dict) and "names" in attrs:
                return dict(zip(attrs["names"], value))
        return value


def read_lazyload(folder: Path) -> dict[str, object]:
    index = RReader(gzip.decompress((folder / "data" / "Rdata.rdx").read_bytes())).item()
    blob = (folder / "data" / "Rdata.rdb").read_bytes()
    objects = {}
    for name, (offset, length) in index["variables"].items():
        chunk = blob[offset : offset + length]
        objects[name] = RReader(zlib.decompress(chunk[4:])).item()
    return objects


# Which novels ship, under what file name, and how many characters of each (from chapter 1 on).
EXCERPTS = {"prideprejudice": "pride_and_prejudice", "emma": "emma", "persuasion": "persuasion"}
EXCERPT_CHARS = 100_000


def paragraphs(lines: list[str]) -> list[str]:
    """Re-join the hard-wrapped lines into one line per paragraph, starting at chapter 1."""
    start = next(i for i, line in enumerate(lines) if line.strip().lower() in ("chapter 1", "chapter i"))
    out, current = [], []
    for line in lines[start:]:
        if line.strip():
            current.append(line.strip())
        elif current:
            out.append(" ".join(current))
            current = []
    if current:
        out.append(" ".join(current))
    return out


def main(src: str, dest: str) -> None:
    objects = read_lazyload(Path(src))
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    for key, name in EXCERPTS.items():
        kept, size = [], 0
        for para in paragraphs(objects[key]):
            if size + len(para) > EXCERPT_CHARS:
                break
            kept.append(para)
            size += len(para) + 2
        (out / f"{name}.txt").write_text("\n\n".join(kept) + "\n", encoding="utf-8")
        print(f"{name}.txt: {len(kept)} paragraphs, {size:,} characters")


if __name__ == "__main__":
    main(*sys.argv[1:3])
