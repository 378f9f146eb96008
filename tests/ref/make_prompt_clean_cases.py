"""diffusers' prompt cleaning (src/text/prompt_clean.h), as references for
tests/unit/test_prompt_clean_ref.c.

Usage: /root/.cache/osp-venv/bin/python tests/ref/make_prompt_clean_cases.py OUT_DIR

Writes OUT_DIR/prompt_clean.jsonl, one case a line, strings as base64 of their UTF-8 bytes:
  {"name": ..., "input": ..., "expected": ...}   expected = WanPipeline's own prompt_clean(input)
  {"name": ..., "input": ..., "invalid_at": N}   input is not UTF-8; Python's decoder stops at
                                                 byte N, where OSP must name it too.
The strings: every HTML5 entity name (with and without its ';', followed by more name
characters), doubly escaped references, numeric references (decimal and hex, every number up
to 0x200, the surrogates, noncharacters and limits, huge ones), unknown names, lone '&', every
whitespace character of str.isspace() and of the regex module's \\s in runs at both ends and in
the middle, CJK and emoji, the empty string, and seeded random mixtures of all of these.
"""

import base64
import json
import os
import pathlib
import random
import sys

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # the pipelines import warns otherwise

from html.entities import html5

from diffusers.pipelines.wan.pipeline_wan import prompt_clean

try:
    import ftfy  # noqa: F401
except ImportError:
    pass
else:
    sys.exit("ftfy is installed: prompt_clean would run ftfy.fix_text, which OSP does not implement")

RANDOM = random.Random(20260711)
PYTHON_SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace()]
REGEX_SPACES = [c for c in PYTHON_SPACES if not 0x1C <= ord(c) <= 0x1F]
NAMES = sorted(html5)


def entity_cases():
    """Every name as it is, inside text, and with more name characters after it."""
    for name in NAMES:
        yield f"entity {name}", f"a&{name}b"
        if not name.endswith(";"):
            yield f"entity {name} + ;", f"&{name}x;"  # the longest-prefix rule
    yield from (
        ("amp", "&amp"), ("ampx", "&ampx"), ("notit;", "&notit;"), ("notin;", "&notin;"),
        ("notin", "&notin"), ("lt at end", "x&lt"), ("ltx", "&ltx"), ("l", "&l"), ("l;", "&l;"),
        ("unknown", "&unknownname;"), ("unknown short", "&zz"), ("longest name", "&CounterClockwiseContourIntegral;"),
        ("name of 32", "&" + "a" * 32 + ";"), ("name of 33", "&" + "a" * 33 + ";"),
        ("amp then 31", "&amp" + "x" * 28 + ";"), ("amp then 32", "&amp" + "x" * 29 + ";"),
        ("non-ASCII in name", "&ampé;"), ("non-ASCII name", "&é;"), ("non-ASCII after prefix", "&notéin;"),
        ("CR in name", "&amp\r;"), ("VT in name", "&amp\x0b"), ("tab ends name", "&amp\t;"),
        ("lone &", "&"), ("&&", "&&"), ("&;", "&;"), ("& amp;", "& amp;"), ("&<", "&<lt;"),
        ("&&amp;", "&&amp;"), ("&#", "&#"), ("&#;", "&#;"), ("&#x", "&#x"), ("&#x;", "&#x;"), ("&#xg", "&#xg;"),
        ("&#X41", "&#X41"), ("&#12abc", "&#12abc"), ("&#x4a4B;", "&#x4a4B;"), ("&#٣;", "&#\u0663;"),
        ("double amp lt", "&amp;lt;"), ("triple amp lt", "&amp;amp;lt;"), ("amp then #", "&amp;#60;"),
        ("#38 then lt", "&#38;lt;"), ("#x26 then #x3c", "&#x26;#x3c;"), ("amp without ; then gt", "&ampgt;"),
        ("nested amps", "&amp;amp;amp;amp;"), ("two-point entity", "&nvlt;&NotEqualTilde;&fjlig;"),
    )


def numeric_cases():
    numbers = list(range(0x200)) + [
        0x7FF, 0x800, 0xD7FF, 0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0xE000, 0xFDCF, 0xFDD0, 0xFDEF, 0xFDF0,
        0xFFFC, 0xFFFD, 0xFFFE, 0xFFFF, 0x10000, 0x1FFFE, 0x1FFFF, 0x20000, 0x10FFFD, 0x10FFFE, 0x10FFFF,
        0x110000, 0x1F600, 0x4E2D, 0x2028, 0x3000, 0xFFFFFFFF, 0x100000000, 10**40,
        2**32 + 0x41, 2**64 + 0x41, 2**32 + 0x26,  # 'A' and '&' to a count that wraps around
    ] + [plane << 16 | 0xFFFE for plane in range(17)] + [plane << 16 | 0xFFFF for plane in range(17)]
    for n in numbers:
        yield f"decimal {n}", f"<&#{n};>"
        yield f"hex {n:#x}", f"<&#x{n:x}>"
    yield "huge decimal", "&#" + "9" * 200 + ";"
    yield "huge hex", "&#X" + "F" * 100
    yield "leading zeros", "&#0000000000000000000065;&#x000000000000000041"
    yield "max then digit", "&#11141110;"


def whitespace_cases():
    for c in PYTHON_SPACES:
        yield f"space {ord(c):#x} around", f"{c}a{c}b{c}{c}c{c}"
        yield f"space {ord(c):#x} with blanks", f" {c} a {c}{c} b{c} "
    yield "every \\s in a run", "x" + "".join(REGEX_SPACES) + "y"
    yield "every isspace at the ends", "".join(PYTHON_SPACES) + "mid" + "".join(reversed(PYTHON_SPACES))
    yield "separators mid run", "a \x1c \x1d\x1e\x1f b"
    yield "only spaces", "".join(PYTHON_SPACES)
    yield "entities of spaces", "&Tab;&NewLine;a&nbsp;&#32;&#x85;b&#13;&#x2028;&ThinSpace;&#x3000;"
    yield "entity spaces at the ends", "&nbsp;&#x1c;x&#12288;&#x1f;"
    yield "removed control between spaces", "a &#x1c; &#1; b"
    yield "NUL", "a\x00b"
    yield "NUL entity", "&#0;\x00&#x0;"


def text_cases():
    yield "empty", ""
    yield "plain", "A cat walks on the grass, realistic style."
    yield "CJK", "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止"
    yield "emoji", "🐱 a cat 👩‍👩‍👧 &amp; 🏳️‍🌈\u3000🎉"
    yield "mixed scripts", "Ünïcödé ελληνικά русский עברית العربية हिन्दी 한국어 日本語"
    yield "wan negative prompt", (
        "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, "
        "images, static, overall gray, worst quality, low quality, JPEG compression residue, ugly")
    yield "html", "<p>A &quot;cat&quot; &amp; a &lt;dog&gt;&nbsp;&mdash; &copy; 2024</p>"


def random_cases(count):
    """Seeded mixtures of the pieces the cleaning reacts to."""
    pieces = (["&", "&#", "&#x", "#", ";", "amp", "lt", "not", "in", "x", "X", "0", "9", "a", "F", "é", "中",
               "😀", "\x00", "<", "\t", "\n", "\f"]
              + PYTHON_SPACES + [f"&{name}" for name in RANDOM.sample(NAMES, 40)]
              + [f"&#{RANDOM.randrange(0x110100)};" for _ in range(20)] + [f"&#x{RANDOM.randrange(0x110100):X}" for _ in range(20)])
    for k in range(count):
        yield f"random {k}", "".join(RANDOM.choice(pieces) for _ in range(RANDOM.randrange(1, 24)))


def invalid_utf8_cases():
    """Byte strings Python's strict decoder refuses, with the byte it names."""
    for name, data in (
        ("continuation first", b"\x80abc"), ("0xFF", b"ok\xff"), ("0xC0 overlong", b"a\xc0\xaf"),
        ("0xC1 overlong", b"\xc1\xbf"), ("3-byte overlong", b"xy\xe0\x80\xaf"), ("4-byte overlong", b"\xf0\x8f\xbf\xbf"),
        ("surrogate", b"abc\xed\xa0\x80"), ("past U+10FFFF", b"\xf4\x90\x80\x80"), ("0xF5", b"\xf5\x80\x80\x80"),
        ("truncated 2", b"caf\xc3"), ("truncated 3", b"\xe4\xb8"), ("truncated 4", b"\xf0\x9f\x98"),
        ("bad second", b"\xe4(\x80"), ("bad third", b"\xe4\xb8("), ("bad fourth", b"\xf0\x9f\x98A"),
        ("valid then bad", "中文 &amp; ".encode() + b"\xbf"),
    ):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as error:
            yield name, data, error.start
        else:
            raise AssertionError(f"{name}: {data!r} decodes")


def b64(data):
    return base64.b64encode(data).decode("ascii")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    valid = [*entity_cases(), *numeric_cases(), *whitespace_cases(), *text_cases(), *random_cases(600)]
    invalid = list(invalid_utf8_cases())
    with open(out / "prompt_clean.jsonl", "w") as f:
        for name, text in valid:
            expected = prompt_clean(text).encode("utf-8")
            f.write(json.dumps({"name": name, "input": b64(text.encode("utf-8")), "expected": b64(expected)}) + "\n")
        for name, data, at in invalid:
            f.write(json.dumps({"name": name, "input": b64(data), "invalid_at": at}) + "\n")
    changed = sum(prompt_clean(text) != text for _, text in valid)
    print(f"{out / 'prompt_clean.jsonl'}: {len(valid)} strings ({changed} changed by the cleaning), "
          f"{len(invalid)} invalid UTF-8")


if __name__ == "__main__":
    main()
