"""QR files and posters of a live code: the code's URL as a PNG or SVG QR symbol (segno), and a
poster (Pillow) with a title, the hook (诱饵), an optional subtitle and the QR, lettered with a
CJK font found on the system.

The font is looked up once per process: ``QUNYUN_POSTER_FONT`` if set, else fontconfig's list of
fonts covering Simplified Chinese (``fc-list :lang=zh-cn``), else the usual Debian paths of
fonts-noto-cjk, fonts-wqy-zenhei/microhei and fonts-arphic-uming. Without one, a poster is refused
with an error that says what to install (a QR needs no font).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont

from qunyun.config import get_settings
from qunyun.errors import InvalidInput, QunyunError
from qunyun.locale import Msg, Translator

# A QR's module size in pixels for the PNG download (the symbol is then some 300-1,000 px wide).
DEFAULT_SCALE = 10
MAX_SCALE = 40
# The URL of a live code is short; anything near a QR's capacity would print as an unscannable
# smudge, so the limit is well below it.
MAX_URL_LENGTH = 1000
# Medium error correction (15 %); segno raises it when the symbol has room to spare.
ERROR_LEVEL = "m"
BORDER = 4  # the quiet zone the QR specification asks for, in modules

# The poster: 9:16, the shape of a phone screen and of a Moments image.
POSTER_SIZE = (1080, 1920)
MARGIN = 90
BAND_HEIGHT = 520  # the coloured band behind the title and subtitle, centred in it
QR_SIZE = 640
QR_TOP = 1020
ACCENT = (11, 122, 90)  # the console's accent colour (console.css --accent)
INK = (31, 35, 40)
MUTED = (89, 99, 110)
WHITE = (255, 255, 255)
BAND_TEXT = (222, 240, 233)  # the subtitle, a paler white on the band


class PosterFontMissing(QunyunError):
    """No font with Chinese characters on this machine: the poster cannot be lettered."""

    status_code = 503
    code = "poster_font_missing"


@dataclass(frozen=True)
class FontFace:
    """One face of a font file (a .ttc collection holds several: Noto Sans CJK JP, KR, SC…)."""

    path: str
    index: int = 0


@dataclass(frozen=True)
class PosterFonts:
    regular: FontFace
    bold: FontFace


# Where Debian's CJK font packages put their files, best first; Noto's have a bold sibling.
KNOWN_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)
KNOWN_BOLD = {
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc": "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc": "/usr/share/fonts/opentype/noto/NotoSerifCJK-Bold.ttc",
}


def _no_font(detail: str = "") -> PosterFontMissing:
    return PosterFontMissing(Msg("err.poster.no_font", detail=detail))


def _simplified_face(path: str) -> FontFace:
    """The face of ``path`` drawn for Simplified Chinese: in a collection the one whose family
    ends in "SC" (Noto's JP face draws 骨, 直, 关 the Japanese way), else the first."""
    if not path.lower().endswith(".ttc"):
        return FontFace(path)
    for index in range(16):
        try:
            family, _style = ImageFont.truetype(path, 12, index=index).getname()
        except OSError:
            break
        if family and (family.endswith(" SC") or "SC " in family):
            return FontFace(path, index)
    return FontFace(path)


def _rank(family: str, style: str) -> tuple[int, int, int]:
    """Lower is better: Simplified Chinese faces, then sans-serif, then the regular weight."""
    sc = 0 if re.search(r"\bSC\b|GB|Hei|hei", family) else 1
    sans = 1 if "serif" in family.lower() and "sans" not in family.lower() else 0
    regular = 0 if style.split(",")[0].strip().lower() in ("regular", "book", "normal", "medium") else 1
    return (sc, sans, regular)


def _fontconfig_fonts() -> PosterFonts | None:
    """The best faces fontconfig lists as covering Simplified Chinese, or None (no fc-list, no
    such font). ``fc-match`` alone would not do: it answers with a Latin font when none fits."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return None
    try:
        listed = subprocess.run(
            [fc_list, ":lang=zh-cn", "--format", "%{file}\t%{index}\t%{family}\t%{style}\n"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    faces: list[tuple[tuple[int, int, int], str, FontFace]] = []
    for line in listed.splitlines():
        parts = line.split("\t")
        if len(parts) != 4 or not parts[0].lower().endswith((".ttf", ".ttc", ".otf", ".otc")):
            continue
        path, index, family, style = parts
        family = family.split(",")[0]
        face = FontFace(path, int(index) if index.isdigit() else 0)
        faces.append((_rank(family, style), style.lower(), face))
    if not faces:
        return None
    faces.sort(key=lambda item: (item[0], item[2].path, item[2].index))
    regular = faces[0][2]
    best_family = faces[0][0][:2]
    bold = next((f for rank, style, f in faces if rank[:2] == best_family and "bold" in style), regular)
    return PosterFonts(regular=regular, bold=bold)


def _known_fonts() -> PosterFonts | None:
    for path in KNOWN_FONTS:
        if Path(path).is_file():
            bold = KNOWN_BOLD.get(path)
            regular = _simplified_face(path)
            bold_face = _simplified_face(bold) if bold and Path(bold).is_file() else regular
            return PosterFonts(regular=regular, bold=bold_face)
    return None


@lru_cache(maxsize=1)
def find_fonts() -> PosterFonts:
    """The faces posters are lettered with (looked up once per process); PosterFontMissing, saying
    what to install, when the machine has none with Chinese characters."""
    configured = get_settings().poster_font.strip()
    if configured:
        if not Path(configured).is_file():
            raise _no_font(f"QUNYUN_POSTER_FONT={configured}")
        face = _simplified_face(configured)
        return PosterFonts(regular=face, bold=face)
    fonts = _fontconfig_fonts() or _known_fonts()
    if fonts is None:
        raise _no_font()
    return fonts


@lru_cache(maxsize=32)
def _font(face: FontFace, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(face.path, size, index=face.index)


# --- QR files ------------------------------------------------------------------------------


def _qr(url: str) -> segno.QRCode:
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput(Msg("err.poster.url_required"), field="url")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(Msg("err.poster.url_too_long", limit=MAX_URL_LENGTH), field="url")
    # Never a Micro QR: phone cameras and WeChat's scanner do not read them.
    return segno.make(url, error=ERROR_LEVEL, micro=False)


def _check_scale(scale: int) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= MAX_SCALE:
        raise InvalidInput(Msg("err.poster.scale", max=MAX_SCALE), field="scale")
    return scale


def qr_png(url: str, *, scale: int = DEFAULT_SCALE) -> bytes:
    """``url`` as a QR symbol in a PNG, ``scale`` pixels per module, with the 4-module quiet zone."""
    qr = _qr(url)
    out = io.BytesIO()
    qr.save(out, kind="png", scale=_check_scale(scale), border=BORDER)
    return out.getvalue()


def qr_svg(url: str) -> bytes:
    """``url`` as a QR symbol in an SVG (UTF-8), one user unit per module: it scales to any print
    size without blur."""
    qr = _qr(url)
    out = io.BytesIO()
    qr.save(out, kind="svg", border=BORDER, xmldecl=True, svgclass=None, lineclass=None, title=url)
    return out.getvalue()


def _qr_image(url: str, size: int) -> Image.Image:
    """The QR of ``url`` at the largest whole number of pixels per module that fits ``size``."""
    qr = _qr(url)
    matrix = [list(row) for row in qr.matrix]
    modules = len(matrix) + 2 * BORDER
    pixel = max(1, size // modules)
    small = Image.new("1", (modules, modules), 1)
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                small.putpixel((x + BORDER, y + BORDER), 0)
    # Nearest neighbour keeps the modules square and sharp.
    return small.resize((modules * pixel, modules * pixel), Image.Resampling.NEAREST)


# --- posters -------------------------------------------------------------------------------

# A run of Latin letters and digits (with the spaces after it) stays on one line where it fits;
# any other character (a Han character, punctuation) may be followed by a line break.
_TOKEN = re.compile(r"[0-9A-Za-z@#&%+\-_.:/'’]+\s*|\s+|.", re.DOTALL)
# Closing punctuation never begins a line (it hangs into the margin instead).
_NO_LINE_START = set("，。、；：！？）》」』】〉,.;:!?)]}%…—")


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int, max_lines: int) -> list[str]:
    """``text`` in lines no wider than ``width`` (closing punctuation may hang), at most
    ``max_lines``: what does not fit ends the last line with "…"."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for token in _TOKEN.findall(paragraph):
            if font.getlength(line + token.rstrip()) <= width or not line.strip() or token in _NO_LINE_START:
                if font.getlength(line + token.rstrip()) > width and not line.strip():
                    # One Latin run wider than the line (a long URL): break it by characters.
                    for char in token:
                        if font.getlength(line + char) > width and line:
                            lines.append(line)
                            line = ""
                        line += char
                else:
                    line += token
            else:
                lines.append(line.rstrip())
                line = token.lstrip()
        lines.append(line.rstrip())
    while len(lines) > 1 and not lines[-1]:
        lines.pop()
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and font.getlength(last + "…") > width:
            last = last[:-1]
        lines = [*lines[: max_lines - 1], last.rstrip() + "…"]
    return lines


def _balanced(text: str, font: ImageFont.FreeTypeFont, width: int, max_lines: int) -> list[str]:
    """``_wrap`` at the narrowest width that needs no more lines than ``width`` does, so that
    the lines are of about one length (no lone character on the last line)."""
    lines = _wrap(text, font, width, max_lines)
    if len(lines) <= 1 or lines[-1].endswith("…"):
        return lines
    low, high = width // 2, width
    while low < high:
        middle = (low + high) // 2
        if len(_wrap(text, font, middle, max_lines + 1)) <= len(lines):
            high = middle
        else:
            low = middle + 1
    return _wrap(text, font, low, max_lines)


def _fit(
    text: str, face: FontFace, width: int, max_lines: int, sizes: range, *, one_line_from: int | None = None
) -> tuple[ImageFont.FreeTypeFont, list[str]]:
    """The largest of ``sizes`` at which ``text`` fits ``max_lines`` balanced lines (else the
    smallest, the text cut with "…"); first one line at any size down to ``one_line_from``."""
    if one_line_from is not None:
        for size in sizes:
            if size < one_line_from:
                break
            font = _font(face, size)
            if font.getlength(text) <= width and "\n" not in text:
                return font, [text]
    font = _font(face, sizes[0])
    for size in sizes:
        font = _font(face, size)
        if len(_wrap(text, font, width, max_lines + 1)) <= max_lines:
            return font, _balanced(text, font, width, max_lines)
    return font, _wrap(text, font, width, max_lines)


@dataclass(frozen=True)
class _Block:
    """Lines of one font, centred, ``spacing`` times the font size apart."""

    lines: list[str]
    font: ImageFont.FreeTypeFont
    fill: tuple[int, int, int]
    spacing: float = 1.35

    @property
    def step(self) -> int:
        return round(self.font.size * self.spacing)

    @property
    def height(self) -> int:
        return (len(self.lines) - 1) * self.step + round(self.font.size * 1.1)

    def draw(self, draw: ImageDraw.ImageDraw, top: int) -> None:
        for number, line in enumerate(self.lines):
            draw.text(
                (POSTER_SIZE[0] // 2, top + number * self.step), line, font=self.font, fill=self.fill, anchor="mt"
            )


def _stack(draw: ImageDraw.ImageDraw, blocks: list[_Block], top: int, bottom: int, gap: int) -> None:
    """``blocks`` one under the other, ``gap`` apart, the whole centred between ``top`` and ``bottom``."""
    height = sum(b.height for b in blocks) + gap * (len(blocks) - 1)
    y = top + max(0, (bottom - top - height) // 2)
    for block in blocks:
        block.draw(draw, y)
        y += block.height + gap


def poster_png(title: str, hook: str, url: str, *, subtitle: str | None = None, lang: str = "zh") -> bytes:
    """A 1080 × 1920 PNG poster: ``title`` (at most two lines, shrunk to fit) and ``subtitle`` on
    a coloured band, ``hook`` below it (at most four lines), then the QR of ``url`` and a line
    asking the reader to scan it, in ``lang``."""
    if not isinstance(title, str) or not title.strip():
        raise InvalidInput(Msg("err.poster.title_required"), field="title")
    qr = _qr_image(url, QR_SIZE)
    fonts = find_fonts()
    width, _height = POSTER_SIZE
    text_width = width - 2 * MARGIN

    image = Image.new("RGB", POSTER_SIZE, WHITE)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, BAND_HEIGHT), fill=ACCENT)

    title_font, title_lines = _fit(title.strip(), fonts.bold, text_width, 2, range(104, 55, -4), one_line_from=80)
    band = [_Block(title_lines, title_font, WHITE, 1.25)]
    if subtitle and subtitle.strip():
        sub_font, sub_lines = _fit(subtitle.strip(), fonts.regular, text_width, 2, range(48, 35, -4))
        band.append(_Block(sub_lines, sub_font, BAND_TEXT))
    _stack(draw, band, 0, BAND_HEIGHT, 36)

    frame = 24  # the QR's white card reaches this far around it
    if hook and hook.strip():
        hook_font, hook_lines = _fit(hook.strip(), fonts.regular, text_width, 4, range(56, 39, -4))
        _stack(draw, [_Block(hook_lines, hook_font, INK, 1.45)], BAND_HEIGHT, QR_TOP - frame, 0)

    # The QR on a white card with a thin frame, centred, its caption underneath.
    left = (width - qr.width) // 2
    draw.rounded_rectangle(
        (left - frame, QR_TOP - frame, left + qr.width + frame, QR_TOP + qr.height + frame),
        radius=24,
        outline=(209, 217, 224),
        width=3,
        fill=WHITE,
    )
    image.paste(qr.convert("RGB"), (left, QR_TOP))
    caption = Translator(lang)("poster.scan_caption")
    caption_font, caption_lines = _fit(caption, fonts.regular, text_width, 1, range(42, 29, -4))
    _Block(caption_lines, caption_font, MUTED).draw(draw, QR_TOP + qr.height + frame + 50)

    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
