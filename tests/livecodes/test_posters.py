"""QR files and posters: the QR decodes back to the live code's URL (zxing-cpp reads it like a
phone would), the SVG holds the same symbol, the poster is a 1080 × 1920 PNG whose title is drawn
in Chinese characters (not missing-glyph boxes), and a machine without a CJK font is told what to
install."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import segno
import zxingcpp
from PIL import Image, ImageChops

from qunyun.config import get_settings
from qunyun.errors import InvalidInput
from qunyun.livecodes import posters

URL = "https://qunyun.example/c/Ab3xK9"


def _decode(png: bytes) -> list[str]:
    image = Image.open(io.BytesIO(png))
    return [result.text for result in zxingcpp.read_barcodes(image.convert("L"))]


@pytest.fixture
def fresh_fonts() -> Iterator[None]:
    """The font lookup and the settings are cached per process: start and end without them."""
    posters.find_fonts.cache_clear()
    get_settings.cache_clear()
    yield
    posters.find_fonts.cache_clear()
    get_settings.cache_clear()


def test_qr_png_decodes_to_the_url() -> None:
    png = posters.qr_png(URL, scale=6)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    modules = segno.make(URL, error="m", micro=False).symbol_size(scale=1, border=4)[0]
    # Square, scale pixels per module, the four-module quiet zone included.
    assert image.size == (modules * 6, modules * 6)
    assert _decode(png) == [URL]


def _svg_modules(svg: str) -> set[tuple[int, int]]:
    """The dark modules (column, row) of segno's SVG path: horizontal runs ("h7") on rows half a
    unit below each move ("M4 4.5", "m-29 1")."""
    path = re.search(r' d="([^"]+)"', svg)
    assert path is not None
    x = y = 0.0
    dark: set[tuple[int, int]] = set()
    for op, first, second in re.findall(r"([Mmh])(-?[0-9.]+)(?:\s+(-?[0-9.]+))?", path.group(1)):
        if op == "M":
            x, y = float(first), float(second)
        elif op == "m":
            x, y = x + float(first), y + float(second)
        else:
            length = int(float(first))
            dark.update((int(x) + i, int(y)) for i in range(length))
            x += length
    return dark


def test_qr_svg_is_the_symbol_of_the_url() -> None:
    svg = posters.qr_svg(URL).decode("utf-8")
    assert svg.startswith("<?xml")
    assert f"<title>{URL}</title>" in svg
    qr = segno.make(URL, error="m", micro=False)
    size = qr.symbol_size(scale=1, border=4)[0]
    assert f'width="{size}" height="{size}"' in svg
    expected = {(x + 4, y + 4) for y, row in enumerate(qr.matrix) for x, bit in enumerate(row) if bit}
    assert _svg_modules(svg) == expected


def test_a_long_url_still_reads_back() -> None:
    url = "https://qunyun.example/c/Ab3xK9?utm_source=" + "x" * 300
    assert _decode(posters.qr_png(url, scale=4)) == [url]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: posters.qr_png(""), "url"),
        (lambda: posters.qr_svg("   "), "url"),
        (lambda: posters.qr_png("https://x.example/" + "a" * 2000), "url"),
        (lambda: posters.qr_png(URL, scale=0), "scale"),
        (lambda: posters.qr_png(URL, scale=posters.MAX_SCALE + 1), "scale"),
        (lambda: posters.poster_png("", "hook", URL), "title"),
        (lambda: posters.poster_png("标题", "hook", ""), "url"),
    ],
)
def test_bad_input_names_the_field(call: object, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        call()  # type: ignore[operator]
    assert caught.value.field == field
    assert caught.value.status_code == 422


def _band(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return image.crop((0, 0, posters.POSTER_SIZE[0], posters.BAND_HEIGHT))


def test_poster_draws_the_title_in_chinese_and_a_readable_qr() -> None:
    png = posters.poster_png("骑迹春季骑行福利群", "新人入群即送 20 元骑行装备券", URL, subtitle="上海 · 滨江骑友会")
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.size == posters.POSTER_SIZE == (1080, 1920)

    # The title area is the accent band with white lettering on it, not an empty band.
    band = _band(png)
    lettered = band.convert("L").histogram()[255]  # pure white: only the title is
    assert lettered > 5_000

    # Two titles of the same length differ on the poster: a font without Chinese glyphs would
    # draw the same missing-glyph box for every character.
    other = _band(
        posters.poster_png("秋季滨江学习交流群", "新人入群即送 20 元骑行装备券", URL, subtitle="上海 · 滨江骑友会")
    )
    assert ImageChops.difference(band, other).getbbox() is not None

    # The poster's QR reads back to the URL.
    assert _decode(png) == [URL]


def test_poster_without_subtitle_or_hook_and_in_english() -> None:
    png = posters.poster_png("Riders", "", URL, lang="en")
    assert Image.open(io.BytesIO(png)).size == posters.POSTER_SIZE
    assert _decode(png) == [URL]


def test_a_long_title_and_hook_fit_the_poster() -> None:
    png = posters.poster_png("春季骑行" * 30, "每周六一起骑滨江绿道，" * 40, URL)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    # Nothing is drawn into the side margins: long text is wrapped, shrunk and cut with "…".
    width = posters.POSTER_SIZE[0]
    hook_area = image.crop((0, posters.BAND_HEIGHT + 1, width, posters.QR_TOP - 30))
    left = hook_area.crop((0, 0, posters.MARGIN - 40, hook_area.height))
    right = hook_area.crop((width - posters.MARGIN + 40, 0, width, hook_area.height))
    for strip in (left, right):
        assert strip.getextrema() == ((255, 255), (255, 255), (255, 255))
    assert _decode(png) == [URL]


def test_the_font_found_draws_simplified_chinese(fresh_fonts: None) -> None:
    fonts = posters.find_fonts()
    for face in (fonts.regular, fonts.bold):
        assert Path(face.path).is_file()
    assert posters._font(fonts.regular, 40).getlength("群") > 0


def test_no_cjk_font_says_what_to_install(fresh_fonts: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A machine without fontconfig's fc-list and none of the known font files.
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(posters, "KNOWN_FONTS", (str(tmp_path / "missing.ttc"),))
    with pytest.raises(posters.PosterFontMissing) as caught:
        posters.poster_png("标题", "hook", URL)
    assert caught.value.status_code == 503
    assert "fonts-noto-cjk" in caught.value.localized("zh")
    assert "apt-get install fonts-noto-cjk" in caught.value.localized("en")
    # QR files need no font.
    assert _decode(posters.qr_png(URL)) == [URL]


def test_a_configured_font_that_is_missing_is_named(fresh_fonts: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUNYUN_POSTER_FONT", "/nowhere/font.ttc")
    with pytest.raises(posters.PosterFontMissing) as caught:
        posters.find_fonts()
    assert "QUNYUN_POSTER_FONT=/nowhere/font.ttc" in caught.value.localized("en")
