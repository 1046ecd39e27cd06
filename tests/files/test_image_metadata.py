"""Metadata stripping on real images built with Pillow: what leaks (GPS, XMP, comments, text) is
gone, what draws the image (pixels, ICC profile, orientation, animation) is unchanged, and broken
or hostile containers only ever raise `ImageMetadataError`."""

from __future__ import annotations

import io
import random
import struct
import zlib
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageSequence, PngImagePlugin
from PIL.ExifTags import GPS, IFD, Base

from gql_chat.files.image_metadata import ImageMetadataError, strip_metadata

FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>secret-xmp</rdf:RDF></x:xmpmeta>'
SECRET = b"secret"
"""In every piece of metadata the tests write, so that finding it in an output is a leak."""
FUZZ = settings(max_examples=60, deadline=None)


def noise(size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> Image.Image:
    """An image of random pixels: nothing compresses it, so any re-encoding would show."""
    width, height = size
    length = len(Image.new(mode, (width, 1)).tobytes()) * height
    return Image.frombytes(mode, size, random.Random(seed).randbytes(length))


def gps_exif(orientation: int | None = 6) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[Base.Orientation] = orientation
    exif[Base.Make] = "secret phone"
    gps = exif.get_ifd(IFD.GPSInfo)
    gps[GPS.GPSLatitudeRef] = "N"
    gps[GPS.GPSLatitude] = (48.0, 51.0, 29.0)
    return exif


def save(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def load(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def frames(data: bytes) -> list[bytes]:
    """Every frame's pixels (and palette): what must come out of stripping unchanged."""
    image = load(data)
    return [
        frame.tobytes() + bytes(frame.getpalette() or []) for frame in ImageSequence.Iterator(image)
    ]


def assert_same_image(original: bytes, stripped: bytes) -> None:
    before, after = load(original), load(stripped)
    assert (after.format, after.size, after.mode) == (before.format, before.size, before.mode)
    assert getattr(after, "n_frames", 1) == getattr(before, "n_frames", 1)
    assert frames(stripped) == frames(original)


def assert_no_metadata(stripped: bytes) -> None:
    image = load(stripped)
    assert SECRET not in stripped
    assert not image.getexif().get_ifd(IFD.GPSInfo)
    assert Base.Make not in image.getexif()
    assert not {"xmp", "XML:com.adobe.xmp", "comment", "Comment"} & set(image.info)


# Hand-built pieces of metadata that Pillow does not write.


def jpeg_segment(code: int, payload: bytes) -> bytes:
    return bytes([0xFF, code]) + struct.pack(">H", len(payload) + 2) + payload


def after_app0(jpeg: bytes) -> int:
    """The offset just past SOI and Pillow's JFIF APP0 segment."""
    assert jpeg[2:4] == b"\xff\xe0"
    return 4 + int.from_bytes(jpeg[4:6], "big")


def tiff(order: bytes, entries: list[tuple[int, int, int, bytes]], ifd: int = 8) -> bytes:
    """A TIFF structure whose IFD0 (at offset `ifd`) holds `entries` (tag, type, count, 4-byte
    value), in byte order `order`."""
    endian = "<" if order == b"II" else ">"
    header = order + struct.pack(f"{endian}HI", 42, ifd) + bytes(max(ifd - 8, 0))
    body = struct.pack(f"{endian}H", len(entries)) + b"".join(
        struct.pack(f"{endian}HHI", tag, kind, count) + value for tag, kind, count, value in entries
    )
    return header + body + bytes(4)


def short(order: bytes, value: int) -> bytes:
    return struct.pack("<HH" if order == b"II" else ">HH", value, 0)


def exif_segment(tiff_data: bytes) -> bytes:
    return jpeg_segment(0xE1, b"Exif\0\0" + tiff_data)


def png_chunk(chunk_type: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(chunk_type + data)
    return struct.pack(">I", len(data)) + chunk_type + data + struct.pack(">I", crc)


def gif_sub_blocks(data: bytes) -> bytes:
    blocks = (data[i : i + 255] for i in range(0, len(data), 255))
    return b"".join(bytes([len(block)]) + block for block in blocks) + b"\0"


def gif_application(identifier: bytes, data: bytes) -> bytes:
    return b"\x21\xff\x0b" + identifier + gif_sub_blocks(data)


GIF_COMMENT = b"\x21\xfe" + gif_sub_blocks(b"secret comment")
GIF_XMP = gif_application(b"XMP DataXMP", XMP + bytes([1, *range(255, -1, -1), 0]))


def gif_header_end(gif: bytes) -> int:
    packed = gif[10]
    return 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)


# JPEG


def test_jpeg_keeps_only_orientation_and_icc() -> None:
    image = noise((48, 32))
    original = save(image, "JPEG", exif=gps_exif(), xmp=XMP, comment=SECRET, icc_profile=SRGB)

    stripped = strip_metadata(original, "JPEG")

    assert_same_image(original, stripped)
    assert_no_metadata(stripped)
    assert dict(load(stripped).getexif()) == {Base.Orientation: 6}
    assert load(stripped).info["icc_profile"] == SRGB
    # Pillow writes big-endian EXIF; the new segment follows JFIF, before everything else.
    orientation = exif_segment(tiff(b"MM", [(0x0112, 3, 1, short(b"MM", 6))]))
    clean = save(image, "JPEG", icc_profile=SRGB)
    assert stripped == clean[: after_app0(clean)] + orientation + clean[after_app0(clean) :]


@pytest.mark.parametrize("order", [b"II", b"MM"])
@pytest.mark.parametrize("with_app0", [True, False])
def test_jpeg_orientation_is_kept_in_its_byte_order(order: bytes, with_app0: bool) -> None:
    clean = save(noise((16, 16)), "JPEG")
    if not with_app0:
        clean = clean[:2] + clean[after_app0(clean) :]
    leak = (0x010F, 2, 4, b"leak")  # Make: not copied
    orientation = [(0x0112, 3, 1, short(order, 8))]
    exif = exif_segment(tiff(order, [leak, *orientation]))
    start = after_app0(clean) if with_app0 else 2
    original = clean[:start] + exif + clean[start:]

    stripped = strip_metadata(original, "JPEG")

    assert stripped == clean[:start] + exif_segment(tiff(order, orientation)) + clean[start:]
    assert dict(load(stripped).getexif()) == {Base.Orientation: 8}
    assert_same_image(original, stripped)


@pytest.mark.parametrize(
    "tiff_data",
    [
        pytest.param(tiff(b"MM", [(0x0112, 3, 1, short(b"MM", 1))]), id="orientation-1"),
        pytest.param(tiff(b"MM", [(0x0112, 3, 1, short(b"MM", 9))]), id="orientation-9"),
        pytest.param(tiff(b"II", [(0x0112, 4, 1, short(b"II", 6))]), id="not-a-short"),
        pytest.param(tiff(b"II", [(0x0112, 3, 2, short(b"II", 6))]), id="two-values"),
        pytest.param(tiff(b"II", [(0x010F, 2, 4, b"leak")]), id="no-orientation"),
        pytest.param(tiff(b"XX", [(0x0112, 3, 1, short(b"MM", 6))]), id="bad-byte-order"),
        pytest.param(tiff(b"MM", [(0x0112, 3, 1, short(b"MM", 6))])[:20], id="truncated-ifd"),
        pytest.param(tiff(b"MM", [(0x0112, 3, 1, short(b"MM", 6))])[:7], id="truncated-header"),
        pytest.param(b"MM\0\x2b\0\0\0\x08" + bytes(20), id="bad-magic"),
        pytest.param(b"II\x2a\0\xff\xff\xff\xff" + bytes(20), id="ifd-past-end"),
        pytest.param(b"II\x2a\0\x08\0\0\0\xff\xff" + bytes(20), id="count-past-end"),
        pytest.param(b"", id="empty"),
    ],
)
def test_jpeg_exif_without_valid_orientation_is_dropped(tiff_data: bytes) -> None:
    clean = save(noise((16, 16)), "JPEG")
    original = clean[:2] + exif_segment(tiff_data) + clean[2:]

    stripped = strip_metadata(original, "JPEG")

    assert stripped == clean
    assert not load(stripped).getexif()


def test_jpeg_drops_iptc_mpf_and_other_app_segments_keeps_icc_and_adobe() -> None:
    clean = save(noise((24, 24), "CMYK"), "JPEG", icc_profile=SRGB)
    assert "adobe" in load(clean).info  # libjpeg's APP14, which says how to read CMYK
    dropped = [
        jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0" + XMP),
        jpeg_segment(0xE2, b"MPF\0" + SECRET),
        jpeg_segment(0xE3, SECRET),
        jpeg_segment(0xED, b"Photoshop 3.0\x008BIM\x04\x04\0\0" + SECRET),
        jpeg_segment(0xEF, SECRET),
        jpeg_segment(0xFE, SECRET),
    ]
    original = clean[:2] + b"".join(dropped) + clean[2:]

    stripped = strip_metadata(original, "JPEG")

    assert stripped == clean
    assert load(stripped).info["icc_profile"] == SRGB


@pytest.mark.parametrize(
    "options", [{"progressive": True}, {"restart_marker_blocks": 1}], ids=["progressive", "rst"]
)
def test_jpeg_drops_segments_between_scans_and_before_eoi(options: dict[str, object]) -> None:
    clean = save(noise((40, 40)), "JPEG", **options)
    assert clean.count(b"\xff\xda") > 1 or b"\xff\xd7" in clean  # several scans, or RSTn
    last_scan = clean.rfind(b"\xff\xda")  # entropy-coded data never holds 0xFF 0xDA
    comment, xmp = jpeg_segment(0xFE, SECRET), jpeg_segment(0xE1, XMP)
    original = (
        clean[:last_scan] + comment + xmp + clean[last_scan:-2] + comment + clean[-2:] + b"junk"
    )

    stripped = strip_metadata(original, "JPEG")

    assert stripped == clean
    assert_same_image(original, stripped)


def test_jpeg_fill_bytes_before_markers() -> None:
    clean = save(noise((16, 16)), "JPEG")
    original = clean[:-2] + b"\xff\xff" + jpeg_segment(0xFE, SECRET) + b"\xff" + clean[-2:]

    stripped = strip_metadata(original, "JPEG")

    assert stripped == clean[:-2] + b"\xff" + clean[-2:]
    assert_same_image(clean, stripped)


# PNG


def png_text() -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret text")
    info.add_text("Location", "secret place", zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    return info


def test_png_strips_text_exif_and_time_keeps_icc() -> None:
    image = noise((30, 20), "RGBA")
    clean = save(image, "PNG", icc_profile=SRGB)
    with_text = save(image, "PNG", icc_profile=SRGB, pnginfo=png_text(), exif=gps_exif())
    time = png_chunk(b"tIME", struct.pack(">HBBBBB", 2024, 5, 6, 7, 8, 9))
    original = with_text[:33] + time + with_text[33:] + b"trailing"  # after IHDR

    stripped = strip_metadata(original, "PNG")

    assert stripped == clean
    assert_same_image(original, stripped)
    assert_no_metadata(stripped)
    assert not load(stripped).getexif()
    assert load(stripped).info["icc_profile"] == SRGB


def test_apng_keeps_frames() -> None:
    images = [noise((20, 20), "RGB", seed) for seed in range(3)]
    options: dict[str, object] = {"save_all": True, "append_images": images[1:], "loop": 0}
    clean = save(images[0], "PNG", duration=[40, 50, 60], **options)
    original = save(images[0], "PNG", duration=[40, 50, 60], pnginfo=png_text(), **options)

    stripped = strip_metadata(original, "PNG")

    assert stripped == clean
    assert_same_image(original, stripped)
    assert load(stripped).info["loop"] == 0


# WebP


@pytest.mark.parametrize("animated", [False, True])
def test_webp_strips_exif_and_xmp_and_clears_their_flags(animated: bool) -> None:
    images = [noise((24, 16), "RGBA", seed) for seed in range(3 if animated else 1)]
    options: dict[str, object] = {"save_all": animated, "append_images": images[1:]}
    original = save(images[0], "WEBP", exif=gps_exif(), xmp=XMP, icc_profile=SRGB, **options)
    assert original[20] & 0x0C == 0x0C  # VP8X flags: EXIF and XMP

    stripped = strip_metadata(original, "WEBP")

    assert_same_image(original, stripped)
    assert_no_metadata(stripped)
    assert not load(stripped).getexif()
    assert load(stripped).info["icc_profile"] == SRGB
    assert stripped[12:16] == b"VP8X"
    assert stripped[20] == original[20] & ~0x0C
    assert struct.unpack_from("<I", stripped, 4)[0] == len(stripped) - 8
    assert b"EXIF" not in stripped
    assert b"XMP " not in stripped


# GIF


def test_gif_strips_comments_and_xmp_keeps_loop_and_plain_text() -> None:
    images = [noise((20, 20), "P", seed) for seed in range(3)]
    options: dict[str, object] = {"save_all": True, "append_images": images[1:], "loop": 0}
    clean = save(images[0], "GIF", duration=70, **options)
    with_comment = save(images[0], "GIF", duration=70, comment=b"secret comment", **options)
    plain_text = b"\x21\x01\x0c" + bytes(12) + gif_sub_blocks(b"hello")
    start = gif_header_end(with_comment)
    original = (
        with_comment[:start]
        + GIF_XMP
        + gif_application(b"SECRET 1.0\0", b"app")
        + plain_text
        + with_comment[start:-1]
        + GIF_COMMENT
        + b";junk"
    )

    stripped = strip_metadata(original, "GIF")

    start = gif_header_end(clean)
    assert stripped == clean[:start] + plain_text + clean[start:]
    assert_same_image(original, stripped)
    assert_no_metadata(stripped)
    info = load(stripped).info
    assert (info["loop"], info["duration"], info["extension"][0]) == (0, 70, b"NETSCAPE2.0")


# Every format


def with_metadata(image_format: str, image: Image.Image) -> bytes:
    """`image` saved with every kind of metadata Pillow writes in `image_format`."""
    if image_format == "JPEG":
        return save(image, "JPEG", exif=gps_exif(), xmp=XMP, comment=SECRET, icc_profile=SRGB)
    if image_format == "PNG":
        return save(image, "PNG", pnginfo=png_text(), exif=gps_exif(), icc_profile=SRGB)
    if image_format == "WEBP":
        return save(image, "WEBP", exif=gps_exif(), xmp=XMP, icc_profile=SRGB)
    gif = save(image, "GIF", comment=b"secret comment", loop=0)
    start = gif_header_end(gif)
    return gif[:start] + GIF_XMP + gif[start:]


@cache
def sample(image_format: str) -> bytes:
    """A small image with metadata, built once for the property tests."""
    mode = {"JPEG": "RGB", "PNG": "RGBA", "WEBP": "RGB", "GIF": "P"}[image_format]
    return with_metadata(image_format, noise((12, 10), mode))


@pytest.mark.parametrize("image_format", FORMATS)
def test_image_without_metadata_is_unchanged(image_format: str) -> None:
    clean = save(noise((20, 12), "RGB"), image_format)

    assert strip_metadata(clean, image_format) == clean
    assert strip_metadata(clean + b"\0trailing\xff", image_format) == clean


@pytest.mark.parametrize("image_format", FORMATS)
def test_stripping_is_idempotent(image_format: str) -> None:
    stripped = strip_metadata(sample(image_format), image_format)

    assert len(stripped) < len(sample(image_format))
    assert strip_metadata(stripped, image_format) == stripped
    assert_same_image(sample(image_format), stripped)
    assert_no_metadata(stripped)


@pytest.mark.parametrize("image_format", ["BMP", "MPO", "jpeg", ""])
def test_unsupported_format_is_a_plain_value_error(image_format: str) -> None:
    with pytest.raises(ValueError, match="cannot strip metadata") as raised:
        strip_metadata(sample("JPEG"), image_format)
    assert not isinstance(raised.value, ImageMetadataError)


BROKEN = [
    ("JPEG", b""),
    ("JPEG", b"\xff\xd8"),
    ("JPEG", b"\xff\xd8\xff"),
    ("JPEG", b"\xff\xd8\xff\xff\xff"),
    ("JPEG", b"\xff\xd8\x00\xff\xd9"),  # garbage instead of a marker
    ("JPEG", b"\xff\xd8\xff\xd8\xff\xd9"),  # a second SOI
    ("JPEG", b"\xff\xd8\xff\xd0\xff\xd9"),  # RST outside a scan
    ("JPEG", b"\xff\xd8\xff\xe0\x00\x01\xff\xd9"),  # length below 2
    ("JPEG", b"\xff\xd8\xff\xe0\x00\x10JFIF\xff\xd9"),  # length past the end
    ("JPEG", b"\xff\xd8\xff\xda\x00\x02\x12\xff\x00\x34\xff\xd3"),  # scan without its end
    ("PNG", b"\x89PNG\r\n\x1a"),
    ("PNG", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", bytes(13))),  # no IEND
    ("PNG", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IH\0R", bytes(13)) + png_chunk(b"IEND", b"")),
    ("PNG", b"\x89PNG\r\n\x1a\n\xff\xff\xff\xffIDAT" + bytes(20)),
    ("WEBP", b"RIFF\x04\0\0\0WEBP"),
    ("WEBP", b"RIFF\x20\0\0\0WEBPVP8 "),  # RIFF size past the end
    ("WEBP", b"RIFF\x0e\0\0\0WEBPVP8L\x03\0\0\0abc"),  # no room for the padding byte
    ("WEBP", b"RIFF\x12\0\0\0WEBPVP8X\x06\0\0\0\x0c\0\0\0\0\0"),  # VP8X too short
    ("WEBP", b"RIFX\x0c\0\0\0WEBPVP8 \0\0\0\0"),
    ("GIF", b"GIF89a\x01\0\x01\0"),
    ("GIF", b"GIF90a\x01\0\x01\0\0\0\0;"),
    ("GIF", b"GIF89a\x01\0\x01\0\x80\0\0;"),  # colour table past the end
    ("GIF", b"GIF89a\x01\0\x01\0\0\0\0"),  # no trailer
    ("GIF", b"GIF89a\x01\0\x01\0\0\0\0\x21\xfe\x05ab\0;"),  # sub-block past the end
    ("GIF", b"GIF89a\x01\0\x01\0\0\0\0\x2c\0\0\0\0\x01\0\x01\0\0"),  # no LZW code size
    ("GIF", b"GIF89a\x01\0\x01\0\0\0\0\x00;"),  # unknown block
]


@pytest.mark.parametrize(("image_format", "data"), BROKEN)
def test_broken_structure_raises(image_format: str, data: bytes) -> None:
    with pytest.raises(ImageMetadataError):
        strip_metadata(data, image_format)


@FUZZ
@given(image_format=st.sampled_from(FORMATS), data=st.data())
def test_truncated_images_raise(image_format: str, data: st.DataObject) -> None:
    """Every format ends with a terminator that a prefix lacks (or a size it contradicts)."""
    original = sample(image_format)
    length = data.draw(st.integers(0, len(original) - 1))

    with pytest.raises(ImageMetadataError):
        strip_metadata(original[:length], image_format)


@FUZZ
@given(image_format=st.sampled_from(FORMATS), data=st.data())
def test_mutated_images_raise_or_strip_cleanly(image_format: str, data: st.DataObject) -> None:
    """Whatever bytes change, the result is an error or a container with nothing left to strip."""
    original = bytearray(sample(image_format))
    positions = st.integers(0, len(original) - 1)
    for position, value in data.draw(
        st.lists(st.tuples(positions, st.integers(0, 255)), min_size=1, max_size=6)
    ):
        original[position] = value

    try:
        stripped = strip_metadata(bytes(original), image_format)
    except ImageMetadataError:
        return
    assert strip_metadata(stripped, image_format) == stripped


MODES = {
    "JPEG": ["L", "RGB", "CMYK"],
    "PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"],
    "WEBP": ["RGB", "RGBA"],
    "GIF": ["L", "P"],
}


@FUZZ
@given(
    image_format=st.sampled_from(FORMATS),
    data=st.data(),
    size=st.tuples(st.integers(1, 24), st.integers(1, 24)),
    seed=st.integers(0, 2**32),
)
def test_random_images_round_trip_pixels(
    image_format: str, data: st.DataObject, size: tuple[int, int], seed: int
) -> None:
    mode = data.draw(st.sampled_from(MODES[image_format]))
    original = with_metadata(image_format, noise(size, mode, seed))

    stripped = strip_metadata(original, image_format)

    assert_same_image(original, stripped)
    assert_no_metadata(stripped)


def test_large_jpeg_strips_in_one_pass() -> None:
    image = noise((1152, 1024))
    clean = save(image, "JPEG", quality=100)
    original = save(image, "JPEG", quality=100, exif=gps_exif(None), xmp=XMP, comment=SECRET)
    assert len(original) > 2 * 2**20

    assert strip_metadata(original, "JPEG") == clean


def test_gif_with_many_frames_strips_in_one_pass() -> None:
    frame = save(noise((200, 200), "P"), "GIF", duration=20)
    start = gif_header_end(frame)
    image_blocks = frame[start:-1]
    count = 2 * 2**20 // len(image_blocks) + 1
    original = frame[:start] + (GIF_COMMENT + image_blocks) * count + GIF_XMP + b";"
    assert len(original) > 2 * 2**20

    stripped = strip_metadata(original, "GIF")

    assert stripped == frame[:start] + image_blocks * count + b";"
    assert getattr(load(stripped), "n_frames", 1) == count
