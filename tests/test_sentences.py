"""The shared sentence splitter (``groundwire.split_sentences`` / ``sentence_spans``, pysbd underneath):
a multilingual table of the failures named in issue 15, the citation-marker rule, and the span invariants
as a property. The extractive generator and groundedness both read sentences through it."""

from __future__ import annotations

import pytest
from groundwire import sentence_spans, split_sentences
from hypothesis import given, settings
from hypothesis import strategies as st

TABLE = [
    # splits before capitals of any script
    ("Es ist gut. Über alles reden wir morgen.", ["Es ist gut.", "Über alles reden wir morgen."]),
    ("Il est venu. Élise est partie.", ["Il est venu.", "Élise est partie."]),
    ("Fin. Ángel llegó tarde.", ["Fin.", "Ángel llegó tarde."]),
    ("Привет. Как дела? Всё хорошо.", ["Привет.", "Как дела?", "Всё хорошо."]),
    ("Γεια σου. Τι κάνεις;", ["Γεια σου.", "Τι κάνεις;"]),
    # CJK terminators need no space after them
    ("これはペンです。あれは本です！本当？はい。", ["これはペンです。", "あれは本です！", "本当？", "はい。"]),
    ("它很好。我们走吧！", ["它很好。", "我们走吧！"]),
    # abbreviations, decimals and initialisms do not end a sentence
    ("Dr. Smith approved it. He signed.", ["Dr. Smith approved it.", "He signed."]),
    ("Bring tools, e.g. a hammer. Then start.", ["Bring tools, e.g. a hammer.", "Then start."]),
    ("Use a form, i.e. the blue one. Done.", ["Use a form, i.e. the blue one.", "Done."]),
    ("The budget is 3.5 percent. It rises.", ["The budget is 3.5 percent.", "It rises."]),
    ("The U.S. office closed. It reopened.", ["The U.S. office closed.", "It reopened."]),
    ("Mr. Müller kam. Frau Dr. Meier ging.", ["Mr. Müller kam.", "Frau Dr. Meier ging."]),
    # the basics
    ("One here. Two there! Three? 4 is a number.", ["One here.", "Two there!", "Three?", "4 is a number."]),
    ("Title line\nFirst sentence. Second.", ["Title line", "First sentence.", "Second."]),
    # citation markers stay with the sentence they close, before or after its full stop
    ("Pay is on the 25th. [1] Leave is 25 days. [2]", ["Pay is on the 25th. [1]", "Leave is 25 days. [2]"]),
    ("Pay is on the 25th [1]. Leave is 25 days [2][3].", ["Pay is on the 25th [1].", "Leave is 25 days [2][3]."]),
]


@pytest.mark.parametrize(("text", "expected"), TABLE, ids=[t[:24] for t, _ in TABLE])
def test_multilingual_table(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_spans_and_sentences_agree() -> None:
    text = "  Pay is on the 25th. [1]  Leave is 25 days.\n"
    spans = sentence_spans(text)
    assert [text[a:b] for a, b in spans] == ["Pay is on the 25th. [1]", "Leave is 25 days."]
    assert split_sentences("") == [] and sentence_spans("   ") == []


alphabet = st.sampled_from(list("abc XYZ.!?\n[]1 。ÄЖe.g") + ["Dr. ", "[1] ", "3.5 "])


@settings(max_examples=200, deadline=None)
@given(st.lists(alphabet, max_size=60).map("".join))
def test_spans_are_ordered_disjoint_and_cover_every_visible_character(text: str) -> None:
    spans = sentence_spans(text)
    assert all(0 <= a < b <= len(text) for a, b in spans)
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(spans, spans[1:], strict=False))
    covered = {i for a, b in spans for i in range(a, b)}
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    assert split_sentences(text) == [text[a:b].strip() for a, b in spans]
    assert all(text[a:b] == text[a:b].strip() for a, b in spans)


def _draft(text: str, chunk_id: str) -> tuple[object, object]:
    from groundwire import Citation, Draft

    cite = Citation(n=1, title="t", uri="u", snippet="", location="", doc_id=chunk_id, chunk_id=chunk_id,
                    connector="kb")
    return Draft("r", text, citations=[cite]), cite


def test_groundedness_reads_abbreviations_and_other_scripts() -> None:
    """The old splitter cut after "Dr." and "e.g." and ignored every word outside a-z, so an unsupported
    Cyrillic sentence was never checked."""
    from groundwire.plugins import groundedness

    text = "Dr. Smith approves leave, e.g. for travel [1]. Every request needs a form [1]."
    assert [text[a:b] for a, b in groundedness.sentence_spans(text)] == [
        "Dr. Smith approves leave, e.g. for travel [1].", "Every request needs a form [1]."]
    from .conftest import make_chunk

    src = make_chunk("c1", "Зарплата выплачивается двадцать пятого числа каждого месяца.")
    draft, _ = _draft("Зарплата выплачивается двадцать пятого числа [1]. Премия составляет миллион рублей [1].",
                      "c1")
    spans = groundedness.unsupported_spans(draft, [src])  # type: ignore[arg-type]
    assert [(draft.text[a:b], why) for a, b, why in spans] == [  # type: ignore[attr-defined]
        ("Премия составляет миллион рублей [1].", "unsupported")]


def test_extractive_generator_picks_single_sentences_in_any_script() -> None:
    """Before, "Über ..." or "Как ..." after a full stop did not start a sentence, so the generator quoted
    the unrelated second half of the source along with the answer."""
    from groundwire import GeneratorContext, GroundingRequest, UserContext
    from groundwire.plugins.embedders import HashingEmbedder
    from groundwire.plugins.extractive import ExtractiveGenerator

    from .conftest import make_chunk

    gen = ExtractiveGenerator(GeneratorContext(HashingEmbedder()), min_similarity=0.1)
    user = UserContext.of("u", "acme")
    cases = [
        ("Wie viele Tage Urlaub gibt es?",
         "Es gibt 30 Tage Urlaub pro Jahr. Über Gehälter entscheidet der Vorstand allein.",
         "Es gibt 30 Tage Urlaub pro Jahr. [1]"),
        ("Сколько дней отпуска?", "Отпуск составляет 28 дней отпуска. Зарплата выплачивается ежемесячно.",
         "Отпуск составляет 28 дней отпуска. [1]"),
    ]
    for prompt, source, expected in cases:
        got = gen.generate(GroundingRequest(user=user, prompt=prompt), [make_chunk("c1", source)]).text
        assert got == expected


def test_hard_wrapped_prose_is_one_sentence_but_blocks_are_not() -> None:
    # the demo corpus wraps lines inside sentences; pysbd alone ended a sentence at every line break
    assert split_sentences("Dana's salary\nincrease for 2026 is 4 percent, effective in April.") == [
        "Dana's salary\nincrease for 2026 is 4 percent, effective in April."]
    assert split_sentences("Meals are reimbursed up to\n60 euros per day. Next.") == [
        "Meals are reimbursed up to\n60 euros per day.", "Next."]
    assert split_sentences("# Title\nBody text.\n- one\n- two\n| a | b |\nafter the table") == [
        "# Title", "Body text.", "- one", "- two", "| a | b |", "after the table"]


def test_pysbd_patterns_are_compiled_once() -> None:
    """pysbd builds its patterns per call (one per abbreviation it meets, ~900 for English text: more than
    the ``re`` module's own cache holds, which made it recompile them on nearly every call); through the
    splitter's pattern cache a new text of the same kind compiles nothing: the one pattern pysbd makes of each
    sentence (to find where it lies) is not asked for, the splitter finds the sentences itself."""
    from groundwire import sentences

    text = ("Dr. Smith met Mr. Jones, e.g. at 3 p.m. in the U.S. office (approx. 5 km away). "
            "The budget rose by 3.5 percent, i.e. more than planned.\n\nFig. 2 shows it. See also No. 7.")
    split_sentences(text)
    before = sentences._compiled.cache_info()
    for i in range(4):
        assert split_sentences(f"{text} Item {i} follows.")[-1] == f"Item {i} follows."
    after = sentences._compiled.cache_info()
    assert after.misses - before.misses == 0
    assert after.hits - before.hits > 40


def test_folds_to_ascii_is_every_character_ignorecase_matches_with_ascii() -> None:
    """The abbreviation skip is exact only on lines without these characters (see groundwire.sentences)."""
    import re

    from groundwire.sentences import _FOLDS_TO_ASCII

    ascii_alnum = re.compile("[a-z0-9]", re.IGNORECASE)
    assert {chr(c) for c in range(128, 0x110000) if ascii_alnum.fullmatch(chr(c))} == set(_FOLDS_TO_ASCII)


_WORDS = ["Dr.", "dr.", "al.", "Al.", "al", "also", "e.g.", "i.e.", "U.S.", "u.s.", "No.", "no.", "no", "5.", "vs.",
          "Fig.", "fig", "p.m.", "Jan.", "St.", "Inc.", "İd.", "ıd.", "ſt.", "K.", "Kelvin", "the", "Cat", "dog.", "it",
          "(1)", "3.5", "Mr.", "Ph.D.", "approx.", "?", "!", "\n", "\n\n"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=30))
def test_abbreviation_skip_changes_no_sentence_of_pysbd(words: list[str]) -> None:
    """pysbd's own ``Segmenter.segment`` and the splitter's faster path give the same sentences, on texts
    dense with abbreviations in every case, and with the characters that fold to ASCII (İ ı ſ K)."""
    import pysbd
    from groundwire.sentences import _segments

    text = " ".join(words)
    stock = [s.strip() for s in pysbd.Segmenter(language="en", clean=False).segment(text)]
    assert [s.strip() for s in _segments(text)] == stock
