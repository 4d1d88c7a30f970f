"""Tables built from Unicode data: the combining-mark classes of the tokenizer and the
punctuation/format-character table of dedupe's normaliser, checked on fresh instances."""

import sys

from pipeline.query.analysis import _mark_class, tokens
from pipeline.stages.dedupe import _StripTable, normalise


def test_mark_class_lists_runs_of_combining_marks():
    assert _mark_class(0x300, 0x36F) == "\u0300-\u036f"  # one run: a range
    assert _mark_class(0x900, 0x905) == "\u0900-\u0903"  # letters after the run are left out
    assert _mark_class(0x93A, 0x93E) == "\u093a-\u093c\u093e"  # a run, a letter, a lone mark
    assert _mark_class(0x41, 0x5A) == ""  # no marks at all
    assert _mark_class(sys.maxunicode - 1, sys.maxunicode + 5) == ""  # stops at the last code point


def test_words_keep_their_combining_marks():
    assert tokens("नमस्ते दुनिया") == ["नमस्ते", "दुनिया"]


def test_strip_table_maps_punctuation_and_symbols_to_space_and_drops_format_characters():
    table = _StripTable()
    assert table[ord(",")] == " " and table[ord("$")] == " " and table[ord("«")] == " "
    assert table[ord("\u200b")] is None  # zero width space: Cf
    assert table[ord("a")] == ord("a") and table[ord("7")] == ord("7")
    assert dict(table) == {
        ord(","): " ",
        ord("$"): " ",
        ord("«"): " ",
        0x200B: None,
        ord("a"): ord("a"),
        ord("7"): ord("7"),
    }


def test_normalise_uses_the_table():
    assert normalise("Hello,\u200b World! $5") == "hello world 5"
