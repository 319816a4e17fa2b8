"""Normalisation applied before the rules and the model see a text.

``clean`` is what both score: Unicode NFKC (fullwidth, mathematical and other compatibility forms become
plain letters), invisible characters removed (zero-width, bidi controls, tag characters, soft hyphen,
variation selectors, Hangul fillers), confusable letters folded (Cyrillic / Greek look-alikes of Latin
letters in words that are Latin or made only of look-alikes), and every run of whitespace (newlines, tabs,
NBSP, the other Unicode spaces) collapsed to one space. ``clean_lines`` does the same but keeps line breaks
(documents are segmented on lines and table rows).

``strip_filler`` drops repeated filler (every word inside a word n-gram that occurs three times or more), so a
payload behind a padding flood of copied text is also read with none of the padding.

``windows`` cuts a long text into overlapping word windows, so a payload after hundreds of filler words is
scored on its own window (the caller takes the max over windows: adding filler cannot lower a score).

Invariants: every function here is pure and total (any ``str`` in, a ``str`` out, no exception); ``clean`` is
idempotent.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "INVISIBLE",
    "WINDOW_STRIDE",
    "WINDOW_WORDS",
    "clean",
    "clean_lines",
    "count_chars",
    "fold_confusables",
    "for_model",
    "homoglyph_words",
    "normalise",
    "script",
    "strip_filler",
    "windows",
]

INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)

# Cyrillic and Greek letters that look like Latin ones (the Latin-script subset of Unicode's confusables.txt
# that NFKC leaves alone). Hand-written because the libraries on PyPI either only detect confusables
# (confusable-homoglyphs) or transliterate whole scripts (anyascii, unidecode), which would turn genuine
# Russian or Greek text into Latin gibberish for the model.
_CONFUSABLE = {
    # Cyrillic lower case
    "а": "a", "в": "b", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j", "к": "k", "м": "m",
    "н": "h", "о": "o", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "ԁ": "d", "ԛ": "q",
    "ԝ": "w", "ɡ": "g", "ӏ": "l", "ү": "y", "ᴦ": "r", "г": "r",
    # Cyrillic upper case
    "А": "A", "В": "B", "Е": "E", "Ё": "E", "Н": "H", "І": "I", "Ї": "I", "Ј": "J", "К": "K", "М": "M",
    "О": "O", "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W",
    "Ү": "Y", "Ӏ": "I",
    # Greek
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
    "χ": "x", "γ": "y", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Latin look-alikes outside ASCII that NFKC keeps
    "ı": "i", "ȷ": "j", "ɑ": "a", "ɩ": "i", "ʏ": "y", "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e",
    "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p",
    "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z",
}
_CONF_TABLE = str.maketrans(_CONFUSABLE)
_WORD = re.compile(r"\w+")
_SCRIPT_CACHE: dict[str, str] = {}


def script(ch: str) -> str:
    """The first word of the character's Unicode name (``LATIN``, ``CYRILLIC``, ``GREEK``, ...)."""
    s = _SCRIPT_CACHE.get(ch)
    if s is None:
        try:
            s = unicodedata.name(ch).split(" ", 1)[0]
        except ValueError:
            s = ""
        _SCRIPT_CACHE[ch] = s
    return s


# ASCII characters to delete so that only those of a class are left (bytes.translate), built from the str
# predicates themselves so that an ASCII text counts exactly as the predicates do
_ASCII = [chr(i) for i in range(128)]
CLASSES: dict[str, bytes] = {
    "alpha": bytes(i for i, c in enumerate(_ASCII) if not c.isalpha()),
    "upper": bytes(i for i, c in enumerate(_ASCII) if not c.isupper()),
    "digit": bytes(i for i, c in enumerate(_ASCII) if not c.isdigit()),
    "symbol": bytes(i for i, c in enumerate(_ASCII) if c.isalnum() or c.isspace()),
}
_PREDICATE = {
    "alpha": str.isalpha,
    "upper": str.isupper,
    "digit": str.isdigit,
    "symbol": lambda c: not c.isalnum() and not c.isspace(),
}


def count_chars(text: str, kind: str) -> int:
    """How many characters of ``text`` are of ``kind`` (``alpha``, ``upper``, ``digit``: the ``str``
    predicates; ``symbol``: neither alphanumeric nor space), exactly ``sum(pred(c) for c in text)``; an ASCII
    text is counted in C (``bytes.translate``)."""
    if text.isascii():
        return len(text.encode("ascii").translate(None, CLASSES[kind]))
    pred = _PREDICATE[kind]
    return sum(1 for c in text if pred(c))


def homoglyph_words(text: str) -> int:
    """Words mixing Latin letters with Cyrillic or Greek ones (``pаypal`` with a Cyrillic ``а``)."""
    n = 0
    for word in re.findall(r"\w{3,}", text):
        if word.isascii():
            continue
        scripts = {script(c) for c in word if c.isalpha()}
        if "LATIN" in scripts and scripts & {"CYRILLIC", "GREEK"}:
            n += 1
    return n


def _fold_mixed(m: re.Match[str]) -> str:
    w = m.group(0)
    if w.isascii() or not any(c.isascii() and c.isalpha() for c in w):
        return w
    return w.translate(_CONF_TABLE)  # a mixed-script word: fold what looks Latin


_FOREIGN = re.compile(r"[\u0370-\u03ff\u0400-\u052f]")


def fold_confusables(text: str) -> str:
    """Look-alike letters folded to Latin: in every mixed-script word, and in the whole text when all its
    Cyrillic / Greek letters have Latin look-alikes (a disguise: genuine Russian or Greek prose has letters
    like и, л, я, λ that do not)."""
    if text.isascii():
        return text
    foreign = set(_FOREIGN.findall(text))
    if foreign and all(c in _CONFUSABLE for c in foreign) and len(text) > 12:
        return text.translate(_CONF_TABLE)
    return _WORD.sub(_fold_mixed, text)


def clean_lines(text: str) -> str:
    """NFKC, invisible characters removed, confusables folded, whitespace inside each line collapsed;
    line breaks kept (blank lines too), case kept."""
    t = fold_confusables(INVISIBLE.sub("", unicodedata.normalize("NFKC", text)))
    return "\n".join(" ".join(line.split()) for line in t.splitlines())


def clean(text: str) -> str:
    """NFKC, invisible characters removed, confusables folded, all whitespace collapsed (case kept)."""
    return " ".join(fold_confusables(INVISIBLE.sub("", unicodedata.normalize("NFKC", text))).split())


def normalise(text: str) -> str:
    """:func:`clean`, case-folded."""
    return clean(text).casefold()


def for_model(text: str) -> str:
    """The text the classifier embeds: :func:`clean`, lower-cased when mostly upper case or mixed case
    (shouting and rAnDoM case are evasions, not content; sentence case is kept as the model was trained)."""
    t = clean(text)
    letters = count_chars(t, "alpha")
    if letters and count_chars(t, "upper") / letters > 0.3:
        return t.lower()
    return t


WINDOW_WORDS = 120  # MiniLM reads 256 word pieces, about 180 English words
WINDOW_STRIDE = 90
MAX_WINDOWS = 64


def windows(text: str, size: int = WINDOW_WORDS, stride: int = WINDOW_STRIDE) -> list[str]:
    """Overlapping windows of ``size`` words (``stride`` apart) covering a cleaned text; one window when it
    is short. Every word lies in a window, and any run of ``size - stride`` words lies wholly in one. For very
    long texts the windows grow (at most ``MAX_WINDOWS``) rather than leave text unscored."""
    words = text.split()
    if len(words) <= size:
        return [" ".join(words)]
    while (len(words) - size) / stride + 1 > MAX_WINDOWS:
        size, stride = size * 2, stride * 2
    starts = list(range(0, len(words) - size + 1, stride))
    if starts[-1] + size < len(words):
        starts.append(len(words) - size)
    out: list[str] = []
    for s in starts:  # identical windows (repeated filler) are scored once
        w = " ".join(words[s : s + size])
        if w not in out:
            out.append(w)
    return out


FILLER_GRAM = 5  # words per n-gram
FILLER_COPIES = 3  # an n-gram occurring this many times or more is filler
FILLER_MIN_WORDS = 40  # fewer filler words than this: no flood (the windows read such a payload well)
# and a flood dominates its text: code, tables and quoted e-mails repeat some n-grams too (a third of the
# words of a typical BIPIA context that repeats any), and the padding of a flood is most of it
FILLER_MIN_SHARE = 0.5


def strip_filler(text: str, n: int = FILLER_GRAM, copies: int = FILLER_COPIES) -> str:
    """The words of ``text`` (whitespace-separated) outside repeated filler, joined by single spaces: a word
    is filler when some word ``n``-gram covering it (compared case-folded) occurs ``copies`` times or more in
    the text, and only runs of at least :data:`FILLER_MIN_WORDS` filler words are dropped. ``""`` when less
    than :data:`FILLER_MIN_SHARE` of the words would be dropped (no flood).

    A padding flood made of copied text (a sentence, a paragraph or one word repeated) is removed whole,
    while a payload that occurs once keeps every word; text with no repeated n-gram is never changed, so
    the stripped text adds nothing to be scored for ordinary prose."""
    words = text.split()
    if len(words) < n * copies:
        return ""
    keys = [w.casefold() for w in words]
    grams = [tuple(keys[i : i + n]) for i in range(len(keys) - n + 1)]
    count: dict[tuple[str, ...], int] = {}
    for g in grams:
        count[g] = count.get(g, 0) + 1
    filler = bytearray(len(words))
    for i, g in enumerate(grams):
        if count[g] >= copies:
            filler[i : i + n] = b"\x01" * n
    # only runs of at least FILLER_MIN_WORDS filler words count: a templated text ("Section 3: the canteen
    # serves ...") repeats short runs between its own words, and stripping those would leave fragments
    drop = bytearray(len(words))
    start = 0
    for i in range(len(words) + 1):
        if i == len(words) or not filler[i]:
            if i - start >= FILLER_MIN_WORDS:
                drop[start:i] = b"\x01" * (i - start)
            start = i + 1
    if sum(drop) < max(FILLER_MIN_WORDS, FILLER_MIN_SHARE * len(words)):
        return ""
    return " ".join(w for w, f in zip(words, drop, strict=True) if not f)
