"""What an uploaded file is, from its bytes alone: an image (PNG, JPEG, WebP, GIF), a PDF or
UTF-8 text, or refused. The client's name and type are only claims: one that names another
kind than the bytes are is refused too.

Blocking work (reads, Pillow, hashing): run it in a worker thread. Every pass is linear in the
file and reads it in `CHUNK_BYTES` pieces, so no single step holds the GIL for long; only an
image is held whole, once, to take its metadata out."""

from __future__ import annotations

import codecs
import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from gql_chat.domain.attachments import AttachmentKind
from gql_chat.files.image_metadata import ImageMetadataError, strip_metadata

CHUNK_BYTES = 256 * 1024
MAX_IMAGE_PIXELS = 50_000_000
"""Larger images are refused before any pixel is decoded (a decompression bomb is a small file
that claims a huge image): 50 megapixels is more than any phone camera takes."""
PDF_HEADER_WITHIN = 1024
"""Readers accept `%PDF-` anywhere in the first kilobyte."""
ORIENTATION_TAG = 0x0112
SIDEWAYS_ORIENTATIONS = frozenset({5, 6, 7, 8})

IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
PDF_TYPE = "application/pdf"
TEXT_TYPES_BY_EXTENSION = {
    "md": "text/markdown",
    "markdown": "text/markdown",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "json": "application/json",
}
PLAIN_TEXT = "text/plain"
TYPE_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/apng": "image/png",
    "image/x-png": "image/png",
    "application/x-pdf": PDF_TYPE,
}
TEXT = "text"
NO_CLAIM = frozenset({"", "application/octet-stream", "binary/octet-stream"})
ARCHIVE = "an archive or other binary format"
# fmt: off
ARCHIVE_EXTENSIONS = (
    "zip", "gz", "tgz", "tar", "7z", "rar", "bz2", "xz", "zst",
    "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp", "epub",
    "exe", "dll", "so", "dylib", "bin", "dmg", "iso", "apk", "jar", "wasm", "class",
    "mp3", "mp4", "m4a", "wav", "mov", "avi", "mkv", "webm", "ogg", "flac",
)
# fmt: on
CLAIMS_BY_EXTENSION = {
    **dict.fromkeys(("png",), "image/png"),
    **dict.fromkeys(("jpg", "jpeg", "jpe", "jfif"), "image/jpeg"),
    **dict.fromkeys(("webp",), "image/webp"),
    **dict.fromkeys(("gif",), "image/gif"),
    **dict.fromkeys(("bmp", "tif", "tiff", "heic", "heif", "avif", "svg", "ico"), "image/other"),
    "pdf": PDF_TYPE,
    **dict.fromkeys(("txt", "md", "markdown", "csv", "tsv", "json"), TEXT),
    **dict.fromkeys(ARCHIVE_EXTENSIONS, ARCHIVE),
}
ARCHIVE_TYPES = frozenset(
    {
        "application/zip",
        "application/x-zip-compressed",
        "application/gzip",
        "application/x-gzip",
        "application/x-tar",
        "application/x-7z-compressed",
        "application/x-rar-compressed",
        "application/vnd.rar",
        "application/x-bzip2",
        "application/x-xz",
        "application/zstd",
        "application/x-msdownload",
        "application/java-archive",
        "application/wasm",
    }
)
ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"7z\xbc\xaf\x27\x1c", b"Rar!")

PAGE_TOKENS = re.compile(rb"(\d{1,10})\s{1,20}\d{1,5}\s{1,20}obj\b|/Type\s{0,20}/Page(?![A-Za-z])")
PAGE_TOKEN_OVERLAP = 64
"""Longer than any match of `PAGE_TOKENS`, so a match cut by a chunk's end is found whole in
the next read."""


# Our own, lower limit refuses those images; Pillow's warning (between its limit and twice it)
# would only repeat that on stderr. Set once at import: `warnings.catch_warnings` is not safe in
# the worker threads this module runs in.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class RefusedFile(ValueError):
    """The file is not one we accept; the message says why and is safe to show."""


@dataclass(frozen=True, slots=True)
class InspectedFile:
    kind: AttachmentKind
    media_type: str
    size: int
    sha256: str
    width: int | None = None
    height: int | None = None
    page_count: int | None = None
    stripped: bytes | None = None
    """An image's bytes without its metadata, to store instead of the upload; None: store the
    upload as it is."""


def inspect_file(source: BinaryIO, filename: str, claimed_type: str | None) -> InspectedFile:
    """Decide what `source` is and check what the client claims; raises `RefusedFile`."""
    source.seek(0)
    head = source.read(PDF_HEADER_WITHIN)
    source.seek(0)
    if not head:
        raise RefusedFile("The file is empty.")
    if head.startswith(ARCHIVE_MAGIC):
        raise RefusedFile("Archives are not accepted: upload an image, a PDF or a text file.")
    if _is_image(head):
        inspected = _inspect_image(source)
    elif _is_pdf(head, source):
        inspected = _inspect_pdf(source)
    else:
        inspected = _inspect_text(source, filename)
    check_claims(inspected, filename, claimed_type)
    return inspected


def check_claims(inspected: InspectedFile, filename: str, claimed_type: str | None) -> None:
    """A name or type that says another kind than the bytes are is refused. A text file may
    come with any text or application type (browsers send odd ones for source code), but not
    with an image's, a PDF's or an archive's."""
    what = _describe(inspected)
    extension = filename.rpartition(".")[2].lower() if "." in filename else ""
    named = CLAIMS_BY_EXTENSION.get(extension)
    if named is not None and not _agrees(inspected, named):
        raise RefusedFile(f"The file is named .{extension} but is {what}.")
    claimed = (claimed_type or "").split(";")[0].strip().lower()
    claimed = TYPE_ALIASES.get(claimed, claimed)
    if claimed not in NO_CLAIM and not _agrees(inspected, claimed):
        raise RefusedFile(f"The file claims to be {claimed} but is {what}.")


def _agrees(inspected: InspectedFile, claim: str) -> bool:
    if claim == TEXT:
        return inspected.kind is AttachmentKind.TEXT
    if inspected.kind is AttachmentKind.TEXT:
        return not (
            claim.startswith("image/")
            or claim in (PDF_TYPE, ARCHIVE)
            or claim in ARCHIVE_TYPES
            or claim.startswith("application/vnd.")
        )
    return claim == inspected.media_type


def _describe(inspected: InspectedFile) -> str:
    if inspected.kind is AttachmentKind.TEXT:
        return "text"
    if inspected.kind is AttachmentKind.PDF:
        return "a PDF"
    return f"a {inspected.media_type.removeprefix('image/').upper()} image"


def _is_image(head: bytes) -> bool:
    return head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")) or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    )


def _is_pdf(head: bytes, source: BinaryIO) -> bool:
    """`%PDF-` first (after white space), or within the first kilobyte (readers allow junk
    before it) with `%%EOF` in the last one: a text file that merely mentions `%PDF-` stays
    text."""
    if head.lstrip(b"\xef\xbb\xbf \t\r\n\f\0").startswith(b"%PDF-"):
        return True
    if b"%PDF-" not in head:
        return False
    source.seek(0, 2)
    source.seek(max(source.tell() - PDF_HEADER_WITHIN, 0))
    tail = source.read()
    source.seek(0)
    return b"%%EOF" in tail


def _inspect_image(source: BinaryIO) -> InspectedFile:
    data = source.read()
    try:
        image = Image.open(io.BytesIO(data), formats=list(IMAGE_TYPES))
        with image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise RefusedFile(
                    f"The image is {width}x{height} pixels; at most {MAX_IMAGE_PIXELS:,} pixels "
                    "are accepted."
                )
            # A phone's JPEG with extra pictures (depth, gain maps) opens as "MPO": it is a
            # JPEG, and the stripped file is a plain one (the extra pictures go).
            image_format = "JPEG" if image.format == "MPO" else image.format or ""
            orientation = image.getexif().get(ORIENTATION_TAG) if image_format == "JPEG" else None
            image.verify()  # the container's structure and checksums; no pixels are decoded
    except Image.DecompressionBombError:
        raise RefusedFile(
            f"The image is too large; at most {MAX_IMAGE_PIXELS:,} pixels are accepted."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, RefusedFile):
            raise
        raise RefusedFile("The image is damaged or not a PNG, JPEG, WebP or GIF.") from None
    try:
        stripped = strip_metadata(data, image_format)
    except ImageMetadataError:
        raise RefusedFile("The image is damaged or not a PNG, JPEG, WebP or GIF.") from None
    del data
    if orientation in SIDEWAYS_ORIENTATIONS:  # shown turned by 90 degrees
        width, height = height, width
    return InspectedFile(
        kind=AttachmentKind.IMAGE,
        media_type=IMAGE_TYPES[image_format],
        size=len(stripped),
        sha256=hashlib.sha256(stripped).hexdigest(),
        width=width,
        height=height,
        stripped=stripped,
    )


def _inspect_pdf(source: BinaryIO) -> InspectedFile:
    digest = hashlib.sha256()
    pages = PageCounter()
    size = 0
    while chunk := source.read(CHUNK_BYTES):
        size += len(chunk)
        digest.update(chunk)
        pages.feed(chunk)
    pages.feed(b"", final=True)
    return InspectedFile(
        kind=AttachmentKind.PDF,
        media_type=PDF_TYPE,
        size=size,
        sha256=digest.hexdigest(),
        page_count=pages.count,
    )


def _inspect_text(source: BinaryIO, filename: str) -> InspectedFile:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    digest = hashlib.sha256()
    size = 0
    try:
        while chunk := source.read(CHUNK_BYTES):
            size += len(chunk)
            digest.update(chunk)
            if b"\x00" in chunk:
                raise UnicodeDecodeError("utf-8", chunk, 0, 1, "NUL byte")
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise RefusedFile(
            "The file is neither an image (PNG, JPEG, WebP, GIF), a PDF nor UTF-8 text."
        ) from None
    extension = filename.rpartition(".")[2].lower() if "." in filename else ""
    return InspectedFile(
        kind=AttachmentKind.TEXT,
        media_type=TEXT_TYPES_BY_EXTENSION.get(extension, PLAIN_TEXT),
        size=size,
        sha256=digest.hexdigest(),
    )


class PageCounter:
    """A PDF's page count where it is cheap: the distinct objects that say `/Type /Page`, read
    in chunks (an incremental update that rewrites a page rewrites the same object number).
    Pages inside compressed object streams cannot be seen this way: the count is then None."""

    def __init__(self) -> None:
        self._tail = b""
        self._object: bytes | None = None
        self._pages: set[bytes | None] = set()

    def feed(self, chunk: bytes, *, final: bool = False) -> None:
        data = self._tail + chunk
        limit = len(data) if final else max(len(data) - PAGE_TOKEN_OVERLAP, 0)
        carry_from = limit
        for match in PAGE_TOKENS.finditer(data):
            if match.end() > limit:  # it may go on in the next chunk: read it whole then
                carry_from = min(match.start(), limit)
                break
            if match.group(1) is not None:
                self._object = match.group(1)
            else:
                self._pages.add(self._object)
        self._tail = data[carry_from:]

    @property
    def count(self) -> int | None:
        return len(self._pages) or None
