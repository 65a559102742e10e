"""Item images: the image fields of Zoho's items and the real PNG / JPEG bytes behind them.

About 60 % of generated items have an image (``image_id``, ``image_document_id``, ``image_name``,
``image_type``; empty strings when none, in list rows too), every 20th a shared placeholder. The bytes are
a function of the seed, the document id and the type only: a small PNG mosaic, or a baseline JPEG coded
with DC coefficients only. Faulty answers (``image_fault``) are made here too. Details:
docs/ARCHITECTURE.md, "The Zoho simulator".
"""

from __future__ import annotations

import hashlib
import random
import re
import struct
import zlib
from functools import lru_cache
from typing import TYPE_CHECKING

from tds_daemon.simulator import errors

if TYPE_CHECKING:
    from tds_daemon.simulator.data import Factory
    from tds_daemon.simulator.samples import Ctx

FIELDS = ("image_id", "image_document_id", "image_name", "image_type")
NO_IMAGE = dict.fromkeys(FIELDS, "")
FORMATS = {"png": "png", "jpg": "jpg", "jpeg": "jpg"}  # what PUT accepts → image_type
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg"}
IMAGE_FAULTS = ("not_found", "not_an_image", "oversized", "html")
DEFAULT_OVERSIZE = 5 * 1024 * 1024

SHARE = 0.6  # items with an image
SHARED_EVERY = 20  # every 20th item shows the shared placeholder image
_IMAGE_INDEX = 96  # the id counter of image documents (see data.Factory._id)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ERROR_HTML = (b"<!DOCTYPE html><html><head><title>Zoho Inventory - Error</title></head><body>"
              b"<h1>Oops! Something went wrong.</h1><p>Please try again after some time.</p></body></html>")


# --- fields ---

def slug(label: str) -> str:
    """``"Olive Oil 1L"`` → ``"olive-oil-1l"`` (ASCII only; ``"item"`` when nothing is left)."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "item"


def _fields(factory: Factory, rng: random.Random, name: str, image_type: str) -> dict:
    document_id = factory._id(_IMAGE_INDEX, rng)
    return {"image_id": document_id, "image_document_id": document_id, "image_name": f"{name}.{image_type}",
            "image_type": image_type}


def item_image(c: Ctx, label: str) -> dict:
    """A generated item's four image fields (empty strings when it has none); ``label`` names the file."""
    factory = c.factory
    if c.serial % SHARED_EVERY == 0:
        shared = factory.images.get("shared")
        if shared is None:
            rng = random.Random(f"tds-sim:{factory.seed}:image:shared")
            shared = factory.images["shared"] = _fields(factory, rng, "placeholder", "png")
        return dict(shared)
    rng = random.Random(f"tds-sim:{factory.seed}:image:{c.serial}")
    if rng.random() >= SHARE:
        return dict(NO_IMAGE)
    return _fields(factory, rng, slug(label), "jpg" if rng.random() < 0.3 else "png")


def new_image(factory: Factory, obj: dict, image_type: str) -> dict:
    """Fields of a new image for ``obj`` (a new document id). The caller holds the store's lock."""
    n = factory.images["changes"] = factory.images.get("changes", 0) + 1
    rng = random.Random(f"tds-sim:{factory.seed}:image:new:{n}")
    label = (obj.get("description") or "").split(",")[0] or obj.get("name") or "item"
    return _fields(factory, rng, slug(label), image_type)


def has_image(obj: dict) -> bool:
    return bool(obj.get("image_document_id") or obj.get("image_id"))


def of_item(seed: int, obj: dict) -> tuple[bytes, str] | None:
    """``(bytes, content type)`` of the item's current image, or None when it has none."""
    if not has_image(obj):
        return None
    image_type = "jpg" if str(obj.get("image_type", "")).lower() in ("jpg", "jpeg") else "png"
    return image_bytes(seed, str(obj.get("image_document_id") or obj["image_id"]), image_type), \
        CONTENT_TYPES[image_type]


# --- bytes ---

@lru_cache(maxsize=512)
def image_bytes(seed: int, document_id: str, image_type: str) -> bytes:
    """The image's bytes: a function of seed, document id and type only."""
    rng = random.Random(hashlib.sha256(f"tds-sim-image:{seed}:{document_id}:{image_type}".encode()).digest())
    comment = f"tds-sim seed={seed} image={document_id}".encode()
    if image_type == "jpg":
        return jpeg([[_colour(rng) for _ in range(4)] for _ in range(4)], comment)
    tiles = [[_colour(rng) for _ in range(6)] for _ in range(6)]
    rows = []
    for y in range(24):
        row = bytearray()
        for x in range(24):
            row += bytes(max(0, min(255, v + rng.randint(-12, 12))) for v in tiles[y // 4][x // 4])
        rows.append(bytes(row))
    return png(24, 24, rows, comment)


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return rng.randrange(256), rng.randrange(256), rng.randrange(256)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_head(width: int, height: int) -> bytes:
    return PNG_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))  # 8-bit RGB


def png(width: int, height: int, rows: list[bytes], comment: bytes) -> bytes:
    """An RGB PNG: ``rows`` of ``3 * width`` bytes each (filter type 0 on every row)."""
    raw = b"".join(b"\x00" + row for row in rows)
    return (_png_head(width, height) + _chunk(b"tEXt", b"Comment\x00" + comment)
            + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b""))


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def jpeg(blocks: list[list[tuple[int, int, int]]], comment: bytes) -> bytes:
    """A baseline JFIF JPEG whose 8×8 blocks are each one RGB colour (``blocks[row][column]``).

    Flat blocks have only a DC coefficient, so the scan is, per block and component, the DC
    difference (category from a table of 12 four-bit codes, then its bits) and an end-of-block
    (the AC table's one code, ``0``). Quantization is 1 everywhere; components Y, Cb, Cr, 4:4:4."""
    height, width = len(blocks) * 8, len(blocks[0]) * 8
    head = b"\xff\xd8" + _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00") + _segment(0xFE, comment)
    head += _segment(0xDB, b"\x00" + b"\x01" * 64)
    head += _segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + b"".join(bytes((c, 0x11, 0)) for c in (1, 2, 3)))
    dc_bits = [0, 0, 0, 12] + [0] * 12  # 12 codes of 4 bits: categories 0..11
    head += _segment(0xC4, b"\x00" + bytes(dc_bits) + bytes(range(12)))
    head += _segment(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\x00")  # EOB only, code "0"
    head += _segment(0xDA, bytes((3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0)))
    acc, n, previous = 0, 0, [0, 0, 0]
    for row in blocks:
        for r, g, b in row:
            ycc = (0.299 * r + 0.587 * g + 0.114 * b, 128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
                   128 + 0.5 * r - 0.418688 * g - 0.081312 * b)
            for i, value in enumerate(ycc):
                dc = round(8 * (value - 128))  # the DCT's DC term of a flat, level-shifted block
                diff, previous[i] = dc - previous[i], dc
                size = abs(diff).bit_length()
                acc, n = (acc << 4) | size, n + 4
                if size:
                    acc, n = (acc << size) | (diff if diff >= 0 else diff + (1 << size) - 1), n + size
                acc, n = acc << 1, n + 1  # end of block
    pad = -n % 8
    acc, n = (acc << pad) | ((1 << pad) - 1), n + pad
    scan = acc.to_bytes(n // 8, "big").replace(b"\xff", b"\xff\x00")
    return head + scan + b"\xff\xd9"


# --- bad answers ---

def fault_answer(fault: str, oversize_bytes: int) -> tuple[str, bytes]:
    """``(content type, body)`` of a 200 answer for ``fault``; ``not_found`` raises Zoho's 404."""
    if fault == "not_found":
        raise not_found()
    if fault == "not_an_image":
        return CONTENT_TYPES["png"], ERROR_HTML
    if fault == "html":
        return "text/html; charset=UTF-8", ERROR_HTML
    if fault == "oversized":
        return CONTENT_TYPES["png"], _oversized(oversize_bytes)
    raise ValueError(f"unknown image fault {fault!r}")


@lru_cache(maxsize=4)
def _oversized(size: int) -> bytes:
    head = _png_head(4096, 4096)
    return head + b"\x00" * max(0, size - len(head))


def not_found() -> errors.ZohoError:
    """An item without an image (Zoho's answer here is *unconfirmed*: its not-found shape, code 1002)."""
    return errors.not_found("Item image")
