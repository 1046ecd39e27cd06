"""What an upload is, decided by its bytes: chunk boundaries never change the answer (PDF page
counts, UTF-8 split across reads), claims that disagree with the bytes are refused, and a
phone's multi-picture JPEG (Pillow's "MPO") is a JPEG."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image

from gql_chat.domain.attachments import AttachmentKind
from gql_chat.files import inspection
from gql_chat.files.inspection import (
    CHUNK_BYTES,
    InspectedFile,
    PageCounter,
    RefusedFile,
    check_claims,
    inspect_file,
)
from tests.files_support import image, pdf, png, png_chunk

SEEDED = hypothesis_settings(derandomize=True, deadline=None, max_examples=60)


def count_in_chunks(data: bytes, cuts: list[int]) -> int | None:
    counter = PageCounter()
    start = 0
    for cut in sorted({min(c, len(data)) for c in cuts}):
        counter.feed(data[start:cut])
        start = cut
    counter.feed(data[start:])
    counter.feed(b"", final=True)
    return counter.count


@SEEDED
@given(pages=st.integers(1, 40), cuts=st.lists(st.integers(0, 5000), max_size=40))
def test_the_page_count_does_not_depend_on_where_reads_end(pages: int, cuts: list[int]) -> None:
    data = pdf(pages)
    assert count_in_chunks(data, cuts) == pages
    assert count_in_chunks(data, list(range(0, len(data), 7))) == pages


def test_an_incremental_update_does_not_count_a_page_twice() -> None:
    data = pdf(3) + b"\n3 0 obj\n<< /Type /Page /Parent 2 0 R /Rotate 90 >>\nendobj\n%%EOF\n"
    assert count_in_chunks(data, []) == 3


def test_pages_hidden_in_object_streams_are_not_guessed() -> None:
    data = b"%PDF-1.7\n1 0 obj\n<< /Type /ObjStm /N 3 /Filter /FlateDecode >>\nstream\nxx\n"
    assert count_in_chunks(data, []) is None


def test_utf8_split_across_reads_is_text() -> None:
    text = ("é" * (CHUNK_BYTES // 2 + 1)).encode()  # a character straddles every read
    inspected = inspect_file(io.BytesIO(text), "notes.txt", None)
    assert (inspected.kind, inspected.size) == (AttachmentKind.TEXT, len(text))


def test_a_nul_byte_after_the_first_read_is_still_binary() -> None:
    data = b"a" * (CHUNK_BYTES + 10) + b"\x00"
    with pytest.raises(RefusedFile, match="neither"):
        inspect_file(io.BytesIO(data), "log.txt", None)


def test_a_phones_multi_picture_jpeg_is_a_jpeg() -> None:
    out = io.BytesIO()
    frames = [Image.new("RGB", (16, 8), "red"), Image.new("RGB", (16, 8), "blue")]
    frames[0].save(out, "MPO", save_all=True, append_images=frames[1:])
    with Image.open(io.BytesIO(out.getvalue())) as opened:
        assert opened.format == "MPO"  # what Pillow calls it
    inspected = inspect_file(io.BytesIO(out.getvalue()), "IMG.jpg", "image/jpeg")
    assert inspected.media_type == "image/jpeg"
    assert inspected.stripped is not None
    with Image.open(io.BytesIO(inspected.stripped)) as stored:
        assert (stored.format, stored.size) == ("JPEG", (16, 8))


def test_too_many_pixels_are_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inspection, "MAX_IMAGE_PIXELS", 99)
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, "PNG")
    with pytest.raises(RefusedFile, match="10x10 pixels"):
        inspect_file(out, "a.png", None)


TEXT = InspectedFile(AttachmentKind.TEXT, "text/plain", 1, "0" * 64)
PNG = InspectedFile(AttachmentKind.IMAGE, "image/png", 1, "0" * 64)
PDF = InspectedFile(AttachmentKind.PDF, "application/pdf", 1, "0" * 64)


@pytest.mark.parametrize(
    ("inspected", "filename", "claimed"),
    [
        (TEXT, "main.ts", "video/mp2t"),  # what browsers send for TypeScript
        (TEXT, "script.sh", "application/x-sh"),
        (TEXT, "Makefile", None),
        (TEXT, "data.json", "application/json; charset=utf-8"),
        (PNG, "photo.PNG", "image/png"),
        (PNG, "no-extension", "application/octet-stream"),
        (PDF, "scan.pdf", "application/x-pdf"),
        (PNG, "frames.png", "image/apng"),
        (TEXT, "notes.txt", "text/plain"),
    ],
)
def test_claims_that_agree_with_the_bytes(
    inspected: InspectedFile, filename: str, claimed: str | None
) -> None:
    check_claims(inspected, filename, claimed)


@pytest.mark.parametrize(
    ("inspected", "filename", "claimed"),
    [
        (TEXT, "drawing.svg", None),
        (TEXT, "notes.txt", "application/pdf"),
        (TEXT, "notes.txt", "application/zip"),
        (TEXT, "notes.txt", "application/vnd.ms-excel"),
        (PNG, "photo.jpg", None),
        (PNG, "photo", "image/gif"),
        (PDF, "paper.docx", None),
        (PDF, "paper", "text/plain"),
        (PDF, "paper.txt", None),
        (PNG, "chart.csv", None),
    ],
)
def test_claims_that_disagree_are_refused(
    inspected: InspectedFile, filename: str, claimed: str | None
) -> None:
    with pytest.raises(RefusedFile):
        check_claims(inspected, filename, claimed)


def test_private_and_unknown_chunks_are_dropped() -> None:
    """Allowlists: a PNG's private chunks (a C2PA manifest, makers' data) and a WebP's unknown
    chunks go, as a JPEG's unknown APP0 payload does."""
    clean = png(8, 8)
    iend = clean.rindex(b"IEND") - 4
    marked = clean[:iend] + png_chunk(b"prIv", b"where: 48.85N") + png_chunk(b"caBX", b"c2pa")
    marked += clean[iend:]
    stored = inspect_file(io.BytesIO(marked), "a.png", None).stripped
    assert stored == clean
    webp = image("WEBP", 8, 8)
    extra = b"XTRA" + (6).to_bytes(4, "little") + b"secret"
    riff = webp[:4] + (len(webp) - 8 + len(extra)).to_bytes(4, "little") + webp[8:] + extra
    assert inspect_file(io.BytesIO(riff), "a.webp", None).stripped == webp
    jpeg = image("JPEG", 8, 8)
    app0 = b"\xff\xe0" + (2 + 8).to_bytes(2, "big") + b"SECRET!!"
    spliced = jpeg[:2] + app0 + jpeg[2:]
    stored_jpeg = inspect_file(io.BytesIO(spliced), "a.jpg", None).stripped
    assert stored_jpeg is not None
    assert b"SECRET" not in stored_jpeg


def test_text_that_mentions_a_pdf_header_is_text() -> None:
    text = b"To spot a PDF, look for %PDF- at the start of the file.\n" * 3
    inspected = inspect_file(io.BytesIO(text), "howto.txt", "text/plain")
    assert inspected.kind is AttachmentKind.TEXT
    junk_first = b"HTTP/1.1 200 OK\r\n\r\n" + pdf(1)
    assert inspect_file(io.BytesIO(junk_first), "a.pdf", None).kind is AttachmentKind.PDF
