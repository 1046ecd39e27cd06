"""Strip metadata (EXIF with GPS, XMP, IPTC, comments, text chunks) from uploaded images without
re-encoding them, so that what we store reveals nothing of where or with what a photo was taken.

Each format's container is walked once and every kept range of the input is copied, unchanged,
into one bytearray: the pixel data stays byte-identical, and time and memory are linear in the
file size. (A list of slices to join would cost some 200 bytes per piece: a hostile file of
millions of 4-byte segments would need a gigabyte.) Searches run in C, through regular
expressions that cannot backtrack; the per-chunk loops take at least 2 bytes a turn. The input is
untrusted: every structural problem raises `ImageMetadataError`."""

from __future__ import annotations

import re
import struct
from collections.abc import Callable


class ImageMetadataError(ValueError):
    """The image's container structure is broken, so its metadata cannot be stripped safely."""


def strip_metadata(data: bytes, image_format: str) -> bytes:
    """image_format is Pillow's format name: "PNG", "JPEG", "WEBP" or "GIF" (anything else:
    ValueError)."""
    strip = _STRIPPERS.get(image_format)
    if strip is None:
        raise ValueError(f"cannot strip metadata from {image_format!r} images")
    return strip(data)


# JPEG: marker segments from SOI; after each SOS, entropy-coded data up to the next marker.

_SOS = 0xDA
_EOI = 0xD9
_APP0 = 0xE0
_APP1 = 0xE1
_APP2 = 0xE2
_APP14 = 0xEE
_APP15 = 0xEF
_COM = 0xFE
_NO_LENGTH = frozenset({0x00, 0x01, 0xD8, *range(0xD0, 0xD8)})
"""Stuffed zero, TEM, SOI and RSTn: none of them may start a segment outside entropy-coded data."""
_JPEG_DECODING_SEGMENTS = frozenset({*range(0xC0, 0xD0), 0xDA, 0xDB, 0xDC, 0xDD, 0xD9})
"""SOF0-15 (0xC4 DHT and 0xCC DAC among them), SOS, DQT, DNL, DRI and EOI."""
_EXIF_PREFIX = b"Exif\0\0"
_ICC_PREFIX = b"ICC_PROFILE\0"
_ORIENTATION_TAG = 0x0112
_TIFF_SHORT = 3
_NOT_FF = re.compile(rb"[^\xff]")
_SCAN_STOP = re.compile(rb"\xff[^\x00\xd0-\xd7]")
"""Where entropy-coded data may end: 0xFF followed by neither a stuffed zero nor RSTn. It also
matches a run of fill bytes, which `_entropy_end` follows to the byte that ends it."""


def _strip_jpeg(data: bytes) -> bytes:
    if not data.startswith(b"\xff\xd8"):
        raise ImageMetadataError("JPEG: no SOI marker")
    view = memoryview(data)
    kept = bytearray(view[:2])
    exif_at = 2  # where a new EXIF segment goes: after SOI and the APP0 segments that follow it
    first_exif: memoryview | None = None
    pos = 2
    while True:
        code, payload, end = _jpeg_segment(data, pos)
        if first_exif is None and code == _APP1 and data.startswith(_EXIF_PREFIX, payload, end):
            first_exif = view[payload + len(_EXIF_PREFIX) : end]
        if _keeps_jpeg_segment(data, code, payload, end):
            if code == _APP0 and exif_at == len(kept):
                exif_at += end - pos
            kept += view[pos:end]
        pos = end
        if code == _EOI:
            break
        if code == _SOS:
            pos = _entropy_end(data, end)
            kept += view[end:pos]
    if first_exif is not None and (orientation := _orientation_segment(first_exif)):
        kept[exif_at:exif_at] = orientation
    return bytes(kept)


def _jpeg_segment(data: bytes, pos: int) -> tuple[int, int, int]:
    """The code (the byte after 0xFF), payload offset (after the length) and end of the segment
    whose marker, fill bytes included, starts at `pos`."""
    if pos + 1 >= len(data) or data[pos] != 0xFF:
        raise ImageMetadataError(f"JPEG: no marker at offset {pos}")
    code_at = pos + 1 if data[pos + 1] != 0xFF else _skip_fill(data, pos + 1)
    code = data[code_at]
    if code == _EOI:
        return code, code_at + 1, code_at + 1
    if code in _NO_LENGTH:
        raise ImageMetadataError(f"JPEG: unexpected marker 0x{code:02X} at offset {code_at}")
    if code_at + 3 > len(data):
        raise ImageMetadataError("JPEG: truncated segment length")
    (length,) = struct.unpack_from(">H", data, code_at + 1)
    end = code_at + 1 + length
    if length < 2 or end > len(data):
        raise ImageMetadataError(f"JPEG: segment 0x{code:02X} has a bad length {length}")
    return code, code_at + 3, end


def _skip_fill(data: bytes, pos: int) -> int:
    """The offset of the first byte at or after `pos` that is not a 0xFF fill byte."""
    match = _NOT_FF.search(data, pos)
    if match is None:
        raise ImageMetadataError("JPEG: truncated marker")
    return match.start()


def _entropy_end(data: bytes, pos: int) -> int:
    """The offset of the marker that ends the entropy-coded data starting at `pos`."""
    while True:
        match = _SCAN_STOP.search(data, pos)
        if match is None:
            raise ImageMetadataError("JPEG: entropy-coded data runs past the end")
        code_at = _skip_fill(data, match.start() + 1)
        if data[code_at] != 0 and not 0xD0 <= data[code_at] <= 0xD7:
            return match.start()
        pos = code_at + 1


def _keeps_jpeg_segment(data: bytes, code: int, payload: int, end: int) -> bool:
    """An allowlist: APP0 only as JFIF or JFXX, APP2 only as an ICC profile, APP14 only as
    Adobe's (the colour transform of CMYK images), and the segments that decode the picture.
    Everything else (other APPn, COM, JPGn, unknown markers) may carry EXIF, XMP, IPTC or
    makers' data, and goes."""
    if code == _APP0:
        return data.startswith((b"JFIF\0", b"JFXX\0"), payload, end)
    if code == _APP2:
        return data.startswith(_ICC_PREFIX, payload, end)
    if code == _APP14:
        return data.startswith(b"Adobe", payload, end)
    return code in _JPEG_DECODING_SEGMENTS


def _orientation_segment(tiff: memoryview) -> bytes | None:
    """An APP1 EXIF segment with only the Orientation of the EXIF data `tiff`, in its byte order,
    so that phone photos are still shown upright; None when it has none (or is malformed)."""
    found = _orientation(tiff)
    if found is None:
        return None
    order, value = found
    endian = "<" if order == b"II" else ">"
    ifd0 = struct.pack(f"{endian}HHHIHHI", 1, _ORIENTATION_TAG, _TIFF_SHORT, 1, value, 0, 0)
    payload = _EXIF_PREFIX + order + struct.pack(f"{endian}HI", 42, 8) + ifd0
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _orientation(tiff: memoryview) -> tuple[bytes, int] | None:
    """The byte order and the Orientation (2..8: 1 needs no tag) of IFD0 in a TIFF structure,
    every offset bounds-checked."""
    order = bytes(tiff[:2])
    if order not in (b"II", b"MM") or len(tiff) < 8:
        return None
    endian = "<" if order == b"II" else ">"
    magic, ifd = struct.unpack_from(f"{endian}HI", tiff, 2)
    if magic != 42 or ifd + 2 > len(tiff):
        return None
    (count,) = struct.unpack_from(f"{endian}H", tiff, ifd)
    entries_end = ifd + 2 + 12 * count
    if entries_end > len(tiff):
        return None
    for entry in range(ifd + 2, entries_end, 12):
        tag, kind, number, value = struct.unpack_from(f"{endian}HHIH", tiff, entry)
        if tag == _ORIENTATION_TAG:
            valid = kind == _TIFF_SHORT and number == 1 and 2 <= value <= 8
            return (order, value) if valid else None
    return None


# PNG: the signature, then chunks (length, type, data, CRC) up to IEND.

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_KEPT = frozenset(
    {
        *(b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS"),
        *(b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB", b"cICP", b"mDCV", b"cLLI", b"mDCv", b"cLLi"),
        *(b"bKGD", b"hIST", b"pHYs", b"sPLT"),
        *(b"acTL", b"fcTL", b"fdAT"),
    }
)
"""An allowlist: the chunks that make the picture (colour, transparency, animation). Text,
EXIF, time, and private or unknown chunks (C2PA manifests, makers' data) go."""


def _strip_png(data: bytes) -> bytes:
    if not data.startswith(_PNG_SIGNATURE):
        raise ImageMetadataError("PNG: bad signature")
    view = memoryview(data)
    kept = bytearray(view[:8])
    pos = 8
    chunk_type = b""
    while chunk_type != b"IEND":
        if pos + 12 > len(data):
            raise ImageMetadataError("PNG: truncated chunk header")
        (length,) = struct.unpack_from(">I", data, pos)
        chunk_type = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data) or not chunk_type.isalpha():
            raise ImageMetadataError(f"PNG: bad chunk at offset {pos}")
        if chunk_type in _PNG_KEPT:
            kept += view[pos:end]
        pos = end
    return bytes(kept)


# WebP: a RIFF container of chunks (tag, little-endian size, data padded to an even length).

_WEBP_KEPT = frozenset({b"VP8 ", b"VP8L", b"ALPH", b"ICCP", b"ANIM", b"ANMF"})
"""An allowlist (VP8X is rewritten): EXIF, XMP and unknown chunks go."""
_VP8X_METADATA_FLAGS = 0x08 | 0x04  # EXIF and XMP present


def _strip_webp(data: bytes) -> bytes:
    if len(data) < 12 or not data.startswith(b"RIFF") or data[8:12] != b"WEBP":
        raise ImageMetadataError("WEBP: bad RIFF header")
    (riff_size,) = struct.unpack_from("<I", data, 4)
    riff_end = 8 + riff_size
    if not 12 < riff_end <= len(data):
        raise ImageMetadataError(f"WEBP: bad RIFF size {riff_size}")
    view = memoryview(data)
    kept = bytearray(b"RIFF\0\0\0\0WEBP")  # the size is set once the chunks are known
    pos = 12
    while pos < riff_end:
        if pos + 8 > riff_end:
            raise ImageMetadataError("WEBP: truncated chunk header")
        tag = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        end = pos + 8 + size + (size & 1)
        if end > riff_end:
            raise ImageMetadataError(f"WEBP: chunk {tag!r} runs past the end")
        if tag == b"VP8X":
            kept += _vp8x_without_metadata(view[pos:end], size)
        elif tag in _WEBP_KEPT:
            kept += view[pos:end]
        pos = end
    struct.pack_into("<I", kept, 4, len(kept) - 8)
    return bytes(kept)


def _vp8x_without_metadata(chunk: memoryview, size: int) -> bytearray:
    """The VP8X chunk with its EXIF and XMP flags cleared, since their chunks are dropped."""
    if size < 10:
        raise ImageMetadataError("WEBP: VP8X chunk too short")
    cleared = bytearray(chunk)
    cleared[8] &= ~_VP8X_METADATA_FLAGS
    return cleared


# GIF: header, logical screen descriptor, global colour table, then blocks up to the trailer.

_GIF_EXTENSION, _GIF_IMAGE, _GIF_TRAILER = 0x21, 0x2C, 0x3B
_GIF_KEPT_EXTENSIONS = frozenset({0xF9, 0x01})  # graphic control, plain text
_GIF_APPLICATION = 0xFF
_GIF_KEPT_APPLICATIONS = frozenset({b"NETSCAPE2.0", b"ANIMEXTS1.0"})  # the loop count


def _strip_gif(data: bytes) -> bytes:
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise ImageMetadataError("GIF: bad header")
    pos = 13 + _colour_table_size(data[10])
    view = memoryview(data)
    kept = bytearray(view[:pos])
    while True:
        if pos >= len(data):
            raise ImageMetadataError("GIF: no trailer")
        block = data[pos]
        if block == _GIF_TRAILER:
            kept.append(_GIF_TRAILER)
            return bytes(kept)
        if block == _GIF_EXTENSION:
            end = _sub_blocks_end(data, pos + 2)
            if _keeps_gif_extension(data, pos):
                kept += view[pos:end]
        elif block == _GIF_IMAGE:
            if pos + 10 > len(data):
                raise ImageMetadataError("GIF: truncated image descriptor")
            code_size_at = pos + 10 + _colour_table_size(data[pos + 9])
            end = _sub_blocks_end(data, code_size_at + 1)
            kept += view[pos:end]
        else:
            raise ImageMetadataError(f"GIF: unknown block 0x{block:02X} at offset {pos}")
        pos = end


def _colour_table_size(packed: int) -> int:
    """The size of the colour table that a descriptor's packed fields announce."""
    return 3 << ((packed & 0x07) + 1) if packed & 0x80 else 0


def _sub_blocks_end(data: bytes, pos: int) -> int:
    """One past the terminator of the data sub-blocks starting at `pos`."""
    size = len(data)
    while pos < size:
        length = data[pos]
        pos += length + 1
        if length == 0:
            return pos
    raise ImageMetadataError("GIF: truncated data sub-blocks")


def _keeps_gif_extension(data: bytes, pos: int) -> bool:
    """Graphic control, plain text and the animation loop count; comments, XMP and any other
    application (or unknown) extension are dropped."""
    label = data[pos + 1]
    if label == _GIF_APPLICATION:
        return data[pos + 2] == 11 and data[pos + 3 : pos + 14] in _GIF_KEPT_APPLICATIONS
    return label in _GIF_KEPT_EXTENSIONS


_STRIPPERS: dict[str, Callable[[bytes], bytes]] = {
    "JPEG": _strip_jpeg,
    "PNG": _strip_png,
    "WEBP": _strip_webp,
    "GIF": _strip_gif,
}
