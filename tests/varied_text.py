"""A deterministic generator of varied text for the tokenizer tests and benchmark.

`varied_sections()` returns named sections (prose, code, Korean, other scripts, emoji, whitespace, mixed ...) whose
content depends only on the seed, the installed Shakespeare corpus and this Python's standard library.
Every character is assigned in Python's Unicode tables (no category Cn), so the `regex` module and tiktoken's Rust
regex split it the same way (their tables differ only on unassigned code points, see shared/ENVIRONMENT.md).
"""

from __future__ import annotations

import random
import sysconfig
import unicodedata
from pathlib import Path

from gpt2_edu.corpus import join_documents, shakespeare

# Our own sentences (not copied from any corpus), a few per script.
KOREAN_SENTENCES = [
    "오늘 아침에는 비가 조금 내렸지만 오후에는 하늘이 맑게 개었습니다.",
    "토크나이저는 글자를 바이트로 바꾼 뒤 자주 붙어 나오는 조각을 하나로 합칩니다.",
    "우리 동네 도서관은 밤 열 시까지 문을 엽니다. 주말에는 조금 일찍 닫아요!",
    '"정말요?" 하고 그녀가 물었다. 나는 고개를 끄덕였다.',
    "셰익스피어의 희곡 서른여덟 편을 모두 읽으려면 시간이 꽤 걸릴 거예요.",
    "한국어 문장은 띄어쓰기 단위로 나뉘고, 조사는 앞말에 붙여 씁니다.",
    "2024년 3월 15일 금요일, 서울의 기온은 영상 12도였다.",
    "김치찌개, 된장찌개, 그리고 비빔밥 중에서 무엇을 드시겠어요?",
    "이 모델은 1억 2천4백만 개의 매개변수를 가지고 있습니다.",
    "ㅋㅋㅋ 진짜 웃기다 ㅠㅠ 그런데 왜 그랬어?",
    "가나다라마바사아자차카타파하 — 한글 자음의 순서입니다.",
    "컴퓨터가 이해하는 것은 결국 숫자뿐이라서, 글은 먼저 번호의 목록이 되어야 합니다.",
]
OTHER_SENTENCES = {
    "greek": [
        "Η γλώσσα είναι ένα ζωντανό σύστημα που αλλάζει κάθε μέρα.",
        "Πόσα βιβλία διάβασες φέτος; Εγώ μόνο τρία!",
        "ΑΘΗΝΑ, 14 Μαΐου — ο καιρός ήταν ζεστός.",
    ],
    "cyrillic": [
        "Съешь же ещё этих мягких французских булок, да выпей чаю.",
        "Токенизатор разбивает текст на части, а затем склеивает частые пары байтов.",
        "Привет, мир! Сегодня 5 декабря, четверг.",
        "Україна, Київ: їжак і ґанок.",
    ],
    "arabic": [
        "اللغة العربية تكتب من اليمين إلى اليسار.",
        "كم عمرك؟ عمري ٢٥ سنة.",
        "مرحبا بكم في درس المحولات والنماذج اللغوية.",
    ],
    "devanagari": [
        "भाषा मॉडल शब्दों के अगले टुकड़े का अनुमान लगाता है।",
        "आज मौसम बहुत अच्छा है, चलो बाहर चलें!",
        "मेरे पास १२३ किताबें हैं।",
    ],
    "thai": ["ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ", "วันนี้อากาศร้อนมาก ฉันจึงดื่มน้ำเย็นสามแก้ว", "สวัสดีครับ ยินดีที่ได้รู้จัก"],
    "cjk": [
        "今天天气很好，我们去公园散步吧。",
        "東京の桜は三月の終わりに咲き始めます。",
        "機械学習モデルは大量のテキストから学ぶ。",
        "我有3本书和12支笔。",
        "「こんにちは」と彼女は言った。",
    ],
    "hebrew": ["השפה העברית נכתבת מימין לשמאל.", "מה שלומך היום? אני בסדר, תודה!", "בשנת 2023 קראתי 17 ספרים."],
}
# Emoji: plain, with skin tones, ZWJ families and professions, flags (regional indicators and tag sequences), keycaps.
EMOJI = [
    "😀",
    "😂",
    "🥲",
    "🤖",
    "🚀",
    "🌍",
    "❤️",
    "✨",
    "🔥",
    "👍",
    "👍🏻",
    "👍🏽",
    "👍🏿",
    "👋🏾",
    "👨‍👩‍👧‍👦",
    "👩‍👩‍👦",
    "👨‍👨‍👧‍👧",
    "🏳️‍🌈",
    "🏳️‍⚧️",
    "🏴‍☠️",
    "👩🏽‍💻",
    "🧑🏿‍🚀",
    "👨‍❤️‍👨",
    "🧔‍♂️",
    "🇰🇷",
    "🇯🇵",
    "🇺🇸",
    "🇫🇷",
    "🇧🇷",
    "🇺🇦",
    "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "1️⃣",
    "#️⃣",
    "©️",
    "™️",
    "☺",
    "♥",
    "⚽",
    "🍣",
    "🫠",
]
# Code point ranges sampled for generated "words" of each script (filtered to assigned, non-mark starts).
SCRIPT_RANGES = {
    "greek": [(0x0391, 0x03A9), (0x03B1, 0x03C9), (0x1F00, 0x1FFC)],
    "cyrillic": [(0x0400, 0x04FF)],
    "arabic": [(0x0620, 0x064A), (0x0660, 0x0669), (0x064B, 0x0652)],
    "devanagari": [(0x0900, 0x097F)],
    "thai": [(0x0E01, 0x0E5B)],
    "cjk": [(0x4E00, 0x9FFF), (0x3041, 0x3096), (0x30A1, 0x30FA), (0xFF10, 0xFF5A)],
    "hebrew": [(0x05D0, 0x05EA), (0x0591, 0x05C7)],
    "latin1": [(0x00A0, 0x00FF)],
    "latin_ext": [(0x0100, 0x024F)],
}
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'Re", "’s", "''", "'", "'x", "'lll"]
WORDS = [
    "the",
    "The",
    "I",
    "you",
    "don",
    "can",
    "won",
    "it",
    "they",
    "we",
    "O",
    "Brien",
    "rock",
    "n",
    "roll",
    "hello",
    "HELLO",
    "naïve",
    "café",
    "Ångström",
    "straße",
    "déjà",
    "vu",
    "über",
    "x",
    "zz",
    "tokenizer",
    "GPT",
    "BPE",
]
PUNCT = [
    ".",
    ",",
    "!",
    "?",
    "...",
    "!!!",
    "?!",
    ";",
    ":",
    "-",
    "--",
    "—",
    "–",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "<",
    ">",
    '"',
    "“",
    "”",
    "«",
    "»",
    "@",
    "#",
    "$",
    "%",
    "^",
    "&",
    "*",
    "/",
    "\\",
    "|",
    "~",
    "`",
    "_",
    "+",
    "=",
    "<|",
    "|>",
    "<|endoftext",
    "endoftext|>",
    "§",
    "¶",
    "°",
    "€",
    "£",
    "¥",
    "…",
]
SPACES = [
    " ",
    "  ",
    "   ",
    "    ",
    "\t",
    "\t\t",
    "\n",
    "\n\n",
    "\r\n",
    "\r\n\r\n",
    " \n",
    "\n ",
    " \t ",
    "\r",
    "\x0b",
    "\x0c",
    "\x85",
    "\u00a0",
    "\u2009",
    "\u3000",
    "\u2028",
    "\u2029",
    " " * 17,
    "\n" * 7,
    "\t" * 9,
    " \r\n\t ",
]
NUMBERS = [
    "0",
    "7",
    "42",
    "123",
    "1234",
    "2024",
    "3.14159",
    "1,000,000",
    "0x1F",
    "1e-9",
    "007",
    "١٢٣",
    "१२३",
    "๑๒๓",
    "½",
    "²",
    "Ⅻ",
    "①",
    "１２３",
]
COMBINING = ["e\u0301", "n\u0303", "a\u0308\u0304", "Z\u0335\u0317\u0353", "\u0301", "\u200d", "\ufe0f", "\u200b"]


def _assigned(c: str) -> bool:
    return unicodedata.category(c) not in ("Cn", "Cs", "Co")


def script_word(rng: random.Random, script: str, max_len: int = 6) -> str:
    "A random 'word' of 1..max_len assigned characters from `script`'s ranges."
    ranges = SCRIPT_RANGES[script]
    out = []
    while len(out) < rng.randint(1, max_len):
        lo, hi = rng.choice(ranges)
        c = chr(rng.randint(lo, hi))
        if _assigned(c):
            out.append(c)
    return "".join(out)


def hangul_word(rng: random.Random, max_len: int = 5) -> str:
    "1..max_len random precomposed Hangul syllables (U+AC00..U+D7A3), sometimes compatibility jamo."
    if rng.random() < 0.05:
        return "".join(chr(rng.randint(0x3131, 0x318E)) for _ in range(rng.randint(1, 3)))
    return "".join(chr(rng.randint(0xAC00, 0xD7A3)) for _ in range(rng.randint(1, max_len)))


def stdlib_code(max_chars: int, skip: int = 0) -> str:
    "Whole top-level stdlib .py files in sorted order (every 3rd, from `skip`) until `max_chars` is reached."
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[skip::3]
    out, n = [], 0
    for f in files:
        text = f.read_text(encoding="utf-8")
        out.append(text)
        n += len(text)
        if n >= max_chars:
            break
    return "".join(out)


def _join(rng: random.Random, parts: list[str]) -> str:
    seps = [" ", " ", " ", "", "\n", ", ", ". ", "  ", "\t", "\r\n"]
    return "".join(p + rng.choice(seps) for p in parts)


def _fill(n_chars: int, piece) -> str:
    "Concatenate `piece()` results until the text holds at least `n_chars` characters."
    out, n = [], 0
    while n < n_chars:
        text = piece()
        out.append(text)
        n += len(text)
    return "".join(out)


def korean_text(rng: random.Random, n_chars: int) -> str:
    "Real Korean sentences interleaved with lines of random Hangul syllable words, digits and punctuation."

    def line():
        if rng.random() < 0.4:
            text = rng.choice(KOREAN_SENTENCES)
        else:
            text = _join(
                rng,
                [
                    hangul_word(rng) if rng.random() < 0.85 else rng.choice(NUMBERS + PUNCT + EMOJI[:5])
                    for _ in range(rng.randint(3, 15))
                ],
            )
        return text + rng.choice(["\n", "\n", " ", "\r\n", "\n\n"])

    return _fill(n_chars, line)


def scripts_text(rng: random.Random, n_chars: int) -> str:
    "Greek, Cyrillic, Arabic, Devanagari, Thai, CJK and Hebrew: real sentences and random words."
    names = list(OTHER_SENTENCES)

    def line():
        script = rng.choice(names)
        if rng.random() < 0.4:
            text = rng.choice(OTHER_SENTENCES[script])
        else:
            text = _join(
                rng,
                [
                    script_word(rng, script) if rng.random() < 0.8 else rng.choice(NUMBERS + PUNCT)
                    for _ in range(rng.randint(3, 12))
                ],
            )
        return text + rng.choice(["\n", " ", "\n\n", "\r\n"])

    return _fill(n_chars, line)


def emoji_text(rng: random.Random, n_chars: int) -> str:
    "Emoji alone, in runs, glued to words and digits, between spaces."

    def piece():
        r = rng.random()
        if r < 0.3:
            text = "".join(rng.choices(EMOJI, k=rng.randint(1, 6)))
        elif r < 0.6:
            text = rng.choice(WORDS) + rng.choice(EMOJI)
        elif r < 0.8:
            text = rng.choice(EMOJI) + rng.choice(NUMBERS + PUNCT)
        else:
            text = rng.choice(SPACES) + rng.choice(EMOJI) + rng.choice(SPACES)
        return text + rng.choice([" ", "", "\n", "  "])

    return _fill(n_chars, piece)


def whitespace_text(rng: random.Random, n_chars: int) -> str:
    "Lines dominated by whitespace: runs of spaces, tabs, CRLF, indentation, trailing spaces, odd Unicode spaces."

    def piece():
        text = rng.choice(SPACES) * rng.randint(1, 4) + rng.choice(WORDS + NUMBERS + PUNCT) + rng.choice(SPACES)
        if rng.random() < 0.01:
            text += " " * rng.randint(100, 300) + rng.choice(["\n", "x", ""])
        return text

    return _fill(n_chars, piece)


def mixed_text(rng: random.Random, n_chars: int) -> str:
    "Everything mixed: contractions, words, digits, punctuation, whitespace, emoji, combining marks, other scripts."
    kinds = [
        lambda: rng.choice(WORDS) + rng.choice(CONTRACTIONS),
        lambda: rng.choice(CONTRACTIONS),
        lambda: rng.choice(WORDS),
        lambda: rng.choice(NUMBERS) + rng.choice(["", "", "%", "st", "th", "."]),
        lambda: str(rng.randint(0, 10 ** rng.randint(1, 15))),
        lambda: rng.choice(PUNCT) * rng.randint(1, 3),
        lambda: rng.choice(SPACES),
        lambda: rng.choice(EMOJI),
        lambda: rng.choice(COMBINING),
        lambda: rng.choice(WORDS) + rng.choice(COMBINING),
        lambda: hangul_word(rng),
        lambda: script_word(rng, rng.choice(list(SCRIPT_RANGES)), 4),
        lambda: "".join(chr(rng.randint(0x20, 0x7E)) for _ in range(rng.randint(1, 8))),
    ]
    return _fill(n_chars, lambda: "".join(rng.choice(kinds)() for _ in range(rng.randint(1, 4))))


def without_spaces(
    n_chars: int,  # length of the result, in characters
    script: str = "latin",  # "latin" (Shakespeare's letters) or "korean" (our Korean sentences)
) -> str:
    "Letters only, no spaces or punctuation: GPT-2's regex makes the whole text ONE chunk (a worst case for BPE)."
    import regex

    source = join_documents(shakespeare("train")) if script == "latin" else "".join(KOREAN_SENTENCES)
    letters = regex.sub(r"[^\p{L}]", "", source)
    return (letters * (n_chars // len(letters) + 1))[:n_chars]


def varied_sections(
    seed: int = 0,  # seeds every generated section
    scale: float = 1.0,  # multiplies the size of the generated sections and the code sample
    prose_splits: tuple[str, ...] = ("valid", "test"),  # held-out Shakespeare splits used as prose
) -> dict[str, str]:
    "Named sections of varied text (>= 1 MB of UTF-8 in all at scale 1), deterministic for a given seed."
    rng = random.Random(seed)

    def n(k):
        return max(1, int(k * scale))

    sections = {
        "prose": join_documents([d for s in prose_splits for d in shakespeare(s)]),
        "code": stdlib_code(n(250_000)),
        "korean": korean_text(rng, n(60_000)),
        "scripts": scripts_text(rng, n(60_000)),
        "emoji": emoji_text(rng, n(15_000)),
        "whitespace": whitespace_text(rng, n(30_000)),
        "mixed": mixed_text(rng, n(60_000)),
    }
    # Pieces such as "<|endoftext" + "|>" may meet by chance: break the special token so `encode(text)` never raises.
    return {k: v.replace("<|endoftext|>", "<|endoftext |>") for k, v in sections.items()}


def varied_text(seed: int = 0, scale: float = 1.0) -> str:
    "All of `varied_sections` in one string."
    return "".join(varied_sections(seed, scale).values())


if __name__ == "__main__":
    for name, text in varied_sections().items():
        print(f"{name:>10}: {len(text):>9,} chars {len(text.encode('utf-8')):>10,} bytes  {text[:60]!r}")
