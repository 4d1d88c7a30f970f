"""The alert query language: parser and syntax tree (the syntax is documented in docs/alerts.md).

``parse_query`` turns a query string into a tree of small frozen dataclasses (:class:`Term`,
:class:`Phrase`, :class:`Field`, :class:`And`, :class:`Or`, :class:`Not`); the stream matcher
(``pipeline.alerts.matcher``) and the Elasticsearch translation (``pipeline.query.es_query``)
both work from that tree, and both analyse words with :mod:`pipeline.query.analysis`.

Grammar (precedence NOT > AND > OR; adjacent operands are ANDed)::

    query   := or EOF
    or      := and ("OR" and)*
    and     := not (["AND"] not)*
    not     := ("NOT" | "-") not | primary
    primary := "(" or ")" | FIELD value | '"phrase"' | word
    value   := word | '"phrase"'          (a space after the colon is allowed)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipeline.query.analysis import normalize_term, token_spans

__all__ = [
    "FIELDS",
    "MAX_DEPTH",
    "MAX_QUERY_LENGTH",
    "MAX_TERMS",
    "And",
    "Field",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "QuerySyntaxError",
    "Term",
    "caret",
    "is_positive",
    "normalize_event_type",
    "parse_query",
    "text_terms",
]

#: the known fields, in the order error messages list them
FIELDS = ("entity", "event", "source", "lang", "title")
KEYWORDS = ("AND", "OR", "NOT")
MAX_QUERY_LENGTH = 4096
MAX_DEPTH = 32
MAX_TERMS = 64
"""most terms, phrases and fields in one query (each costs every matched article a lookup)"""

_OPEN_QUOTES = {'"': '"', "\u201c": "\u201d"}
_FIELD_RE = re.compile(r"([A-Za-z]+):(.*)", re.DOTALL)
_WORD_END = re.compile(r"[\s()\"\u201c]")


class QuerySyntaxError(ValueError):
    """An invalid query. ``position`` is the 0-based offset of the problem in the query."""

    def __init__(self, message: str, position: int | None = None, hint: str | None = None):
        self.message = message
        self.position = position
        self.hint = hint
        text = message if position is None else f"{message} at column {position + 1}"
        super().__init__(f"{text} ({hint})" if hint else text)


def caret(query: str, position: int) -> str:
    """The query, and under it a ``^`` at ``position`` (for command-line error output)."""
    pad = "".join(c if c == "\t" else " " for c in query[:position])
    return f"{query}\n{pad}^"


# --- syntax tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """A word, matched after analysis ("Sanctions" finds "sanction", "cease-fire" "ceasefire")."""

    text: str
    pos: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Phrase:
    """A quoted phrase: its analysed words, consecutive."""

    text: str
    pos: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Field:
    """``name:value``; ``name`` is one of :data:`FIELDS`, ``value`` a Term or a Phrase."""

    name: str
    value: Term | Phrase
    pos: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]
    pos: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]
    pos: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Not:
    child: Node
    pos: int = field(default=0, compare=False, repr=False)


Node = Term | Phrase | Field | And | Or | Not


def text_terms(node: Term | Phrase) -> tuple[tuple[str, ...], str]:
    """The analysed tokens of a term or phrase, and its compound (all parts joined)."""
    return tuple(span.token for span in token_spans(node.text)), normalize_term(node.text)


def normalize_event_type(text: str) -> str:
    """ "Prisoner Exchange", "prisoner-exchange", "Prisoner_Exchange" -> "prisoner_exchange"."""
    return "_".join(re.findall(r"[^\W_]+", text.casefold()))


# --- lexer ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # "(", ")", "AND", "OR", "NOT", "WORD", "PHRASE", "FIELD"
    pos: int
    node: Node | None = None


class _Lexer:
    """Splits a query into tokens; field values are read here so they may contain colons."""

    def __init__(self, query: str):
        self.query = query
        self.i = 0

    def tokens(self) -> list[_Token]:
        out = []
        while (token := self._next()) is not None:
            out.append(token)
        return out

    def _skip_space(self) -> None:
        while self.i < len(self.query) and self.query[self.i].isspace():
            self.i += 1

    def _next(self) -> _Token | None:
        self._skip_space()
        if self.i >= len(self.query):
            return None
        start, char = self.i, self.query[self.i]
        if char in "()":
            self.i += 1
            return _Token(char, start)
        if char in _OPEN_QUOTES:
            return _Token("PHRASE", start, self._phrase())
        if char == "-" and self._starts_operand(start + 1):
            self.i += 1
            return _Token("NOT", start)
        word = self._word()
        if word in KEYWORDS:
            return _Token(word, start)
        if match := _FIELD_RE.fullmatch(word):
            return _Token("FIELD", start, self._field(match.group(1), match.group(2), start))
        return _Token("WORD", start, _checked(Term(word, start)))

    def _starts_operand(self, i: int) -> bool:
        return i < len(self.query) and not self.query[i].isspace() and self.query[i] not in ")-"

    def _word(self) -> str:
        start = self.i
        end = _WORD_END.search(self.query, start)
        self.i = end.start() if end else len(self.query)
        return self.query[start : self.i]

    def _phrase(self) -> Phrase:
        start = self.i
        close = self.query.find(_OPEN_QUOTES[self.query[start]], start + 1)
        if close < 0:
            raise QuerySyntaxError("unterminated quote", start)
        self.i = close + 1
        text = self.query[start + 1 : close].strip()
        if not text:
            raise QuerySyntaxError("empty phrase", start)
        return _checked(Phrase(text, start))

    def _field(self, name: str, rest: str, start: int) -> Field:
        name = name.lower()
        if name not in FIELDS:
            raise QuerySyntaxError(
                f"unknown field '{name}:'", start, hint=f"known: {', '.join(FIELDS)}"
            )
        if rest:
            value: Term | Phrase = Term(rest, start + len(name) + 1)
        else:
            self._skip_space()
            value_start = self.i
            if value_start < len(self.query) and self.query[value_start] in _OPEN_QUOTES:
                value = self._phrase()
            else:
                word = self._word() if value_start < len(self.query) else ""
                if not word or word in KEYWORDS:
                    raise QuerySyntaxError(
                        f"field '{name}:' needs a term or a quoted phrase", start
                    )
                value = Term(word, value_start)
        return _checked_field(Field(name, value, start))


def _checked(node: Term | Phrase) -> Term | Phrase:
    """Reject a term or phrase with nothing searchable in it (e.g. '&' or '"--"'), or written
    as a wildcard, regular expression or fuzzy term (:func:`_reject_patterns`)."""
    if not token_spans(node.text):
        raise QuerySyntaxError(f"'{node.text}' has no letters or digits", node.pos)
    _reject_patterns(node)
    return node


_REGEX_RE = re.compile(r"/.+/")
_FUZZY_RE = re.compile(r"\w~\d*$")


def _reject_patterns(node: Term | Phrase) -> None:
    """Wildcards, regexes and fuzzy terms are refused, never passed on: they would make the
    cluster scan its whole term dictionary (a leading wildcard above all), and a word already
    matches its inflections ("sanction" finds "sanctions")."""
    text = node.text
    hint = "write the word itself: a term already matches its other forms"
    if _REGEX_RE.fullmatch(text):
        raise QuerySyntaxError(f"regular expressions are not supported: '{text}'", node.pos, hint)
    if "*" in text or "?" in text.rstrip("?"):
        where = "leading wildcards" if text.lstrip("\"'(")[:1] in ("*", "?") else "wildcards"
        raise QuerySyntaxError(f"{where} are not supported: '{text}'", node.pos, hint)
    if isinstance(node, Term) and _FUZZY_RE.search(text):
        raise QuerySyntaxError(f"fuzzy terms (~) are not supported: '{text}'", node.pos, hint)


def _checked_field(node: Field) -> Field:
    """Reject a field whose value normalises to nothing."""
    text = node.value.text
    empty = not normalize_event_type(text) if node.name == "event" else not text.strip()
    if empty or (node.name in ("title", "entity") and not token_spans(text)):
        raise QuerySyntaxError(f"field '{node.name}:' has an empty value", node.pos)
    if node.name in ("title", "entity"):
        _reject_patterns(node.value)
    return node


# --- parser --------------------------------------------------------------------------------

_OPERAND_START = ("(", "NOT", "WORD", "PHRASE", "FIELD")


class _Parser:
    """Recursive descent over the lexer's tokens (see the grammar in the module docstring)."""

    def __init__(self, tokens: list[_Token]):
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def parse(self) -> Node:
        node = self.parse_or()
        if (token := self.peek()) is not None:  # only a stray ")" can be left over
            raise QuerySyntaxError("unbalanced parenthesis", token.pos)
        return node

    def parse_or(self) -> Node:
        children = [self.parse_and()]
        while (token := self.peek()) is not None and token.kind == "OR":
            self.take()
            self._need_operand(token, "OR needs a term on both sides")
            children.append(self.parse_and())
        return children[0] if len(children) == 1 else Or(tuple(children), children[0].pos)

    def parse_and(self) -> Node:
        children = [self.parse_not()]
        while (token := self.peek()) is not None and token.kind in ("AND", *_OPERAND_START):
            if token.kind == "AND":
                self.take()
                self._need_operand(token, "AND needs a term on both sides")
            children.append(self.parse_not())
        return children[0] if len(children) == 1 else And(tuple(children), children[0].pos)

    def parse_not(self) -> Node:
        token = self.peek()
        if token is not None and token.kind == "NOT":
            self.take()
            self._need_operand(token, "NOT needs something to negate")
            return Not(self._nested(self.parse_not, token), token.pos)
        return self.parse_primary()

    def parse_primary(self) -> Node:
        token = self.peek()  # never None: callers check an operand follows
        if token.kind in ("AND", "OR"):
            raise QuerySyntaxError(f"{token.kind} needs a term on both sides", token.pos)
        if token.kind == ")":
            raise QuerySyntaxError("unbalanced parenthesis", token.pos)
        self.take()
        if token.kind != "(":
            return token.node
        if (inner := self.peek()) is None:
            raise QuerySyntaxError("unbalanced parenthesis", token.pos)
        if inner.kind == ")":
            raise QuerySyntaxError("empty parentheses", token.pos)
        node = self._nested(self.parse_or, token)
        if (close := self.peek()) is None or close.kind != ")":
            raise QuerySyntaxError("unbalanced parenthesis", token.pos)
        self.take()
        return node

    def _nested(self, parse, token: _Token) -> Node:
        """Run ``parse`` one nesting level deeper, refusing pathological nesting."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QuerySyntaxError(f"query nested deeper than {MAX_DEPTH} levels", token.pos)
        try:
            return parse()
        finally:
            self.depth -= 1

    def _need_operand(self, operator: _Token, message: str) -> None:
        token = self.peek()
        if token is None or token.kind not in _OPERAND_START:
            raise QuerySyntaxError(message, operator.pos)


# --- validation ----------------------------------------------------------------------------


def is_positive(node: Node) -> bool:
    """Whether ``node`` needs something present in the article (so it can be indexed).

    A NOT alone, or an OR with an all-negative alternative, matches nearly every article.
    """
    if isinstance(node, Not):
        return False
    if isinstance(node, And):
        return any(is_positive(child) for child in node.children)
    if isinstance(node, Or):
        return all(is_positive(child) for child in node.children)
    return True


def _reject_negative(node: Node) -> None:
    if is_positive(node):
        return
    if isinstance(node, Or):
        culprit = next(child for child in node.children if not is_positive(child))
        raise QuerySyntaxError(
            "this OR alternative has only NOT and would match nearly every article",
            culprit.pos,
            hint="give it a positive term, e.g. 'a OR (b AND NOT c)'",
        )
    raise QuerySyntaxError(
        "a query of only NOT matches too much (nearly every article)",
        node.pos,
        hint="combine it with a positive term, e.g. 'memorandum AND NOT Kellogg'",
    )


def parse_query(query: str) -> Node:
    """Parse an alert query; raise :class:`QuerySyntaxError` (with a position) when invalid."""
    if len(query) > MAX_QUERY_LENGTH:
        raise QuerySyntaxError(f"query longer than {MAX_QUERY_LENGTH} characters", MAX_QUERY_LENGTH)
    tokens = _Lexer(query).tokens()
    if not tokens:
        raise QuerySyntaxError("empty query")
    node = _Parser(tokens).parse()
    _reject_negative(node)
    terms = _count_terms(node)
    if terms > MAX_TERMS:
        raise QuerySyntaxError(
            f"query has {terms} terms, more than {MAX_TERMS}",
            hint="split it into several subscriptions",
        )
    return node


def _count_terms(node: Node) -> int:
    if isinstance(node, (Term, Phrase, Field)):
        return 1
    if isinstance(node, Not):
        return _count_terms(node.child)
    return sum(_count_terms(child) for child in node.children)
