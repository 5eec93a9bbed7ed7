# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Calico v3 label selectors: parse, canonical form, evaluation.

This is a pure module (it imports nothing from Ansible).  It reproduces the selector language of
Calico's ``libcalico-go/lib/selector`` as ``docs/semantics.md`` §2 describes it:

* blanks between tokens are only space and TAB; any other character outside a string literal
  (newline and carriage return included) is an error;
* a label is 1..512 characters of ``[A-Za-z0-9_./-]``; string literals are ``"..."`` or ``'...'``
  with no escapes;
* ``contains``, ``starts with``, ``ends with``, ``in`` and ``not in`` are operators only right after
  a label (the words of the two-word operators may be separated by blanks or joined), and only when
  they end on a word boundary; ``has(``, ``all(`` and ``global(`` are recognised only where a label
  could start and only with the ``(`` attached;
* ``!`` binds tighter than ``&&``, which binds tighter than ``||``; any run of ``!`` collapses to one
  negation or none;
* a missing label satisfies ``!=`` and ``not in`` and nothing else.

Typical use::

    sel = parse('role == "node" && zone in {"a", "b"}')
    sel.matches({"role": "node", "zone": "a"})   # True
    sel.canonical                                # '(role == "node" && zone in {"a", "b"})'

``parse`` is memoised and returns immutable :class:`Selector` objects that compare and hash by
their canonical form (Calico's ``Selector.String()``), so semantically identical spellings that
Calico would put into one IP set compare equal here too.

Matching is compiled once per selector into nested closures that only do dictionary lookups and
string operations.  Parsing, printing and compiling are iterative where nesting depth is
unbounded, so no input can make them hit Python's recursion limit.
"""

from __future__ import annotations

import functools
from typing import Callable, List, Mapping, Optional, Tuple

__all__ = ["ALL", "Selector", "SelectorError", "parse"]

MAX_LABEL_LENGTH = 512

# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class SelectorError(ValueError):
    """A selector that Calico would reject.

    ``selector`` is the text as given, ``position`` the 0-based character offset of the problem
    (the length of the text for a selector that ends too early) and ``reason`` says what is wrong.
    """

    def __init__(self, selector: str, position: int, reason: str) -> None:
        super().__init__(selector, position, reason)
        self.selector = selector
        self.position = position
        self.reason = reason

    def __str__(self) -> str:
        return 'invalid selector "%s": %s at position %d' % (self.selector, self.reason, self.position)


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------

_LABEL = "label"
_STRING = "string"
_LBRACE = "{"
_RBRACE = "}"
_COMMA = ","
_EQ = "=="
_NE = "!="
_NOT = "!"
_IN = "in"
_NOTIN = "not in"
_CONTAINS = "contains"
_STARTS = "starts with"
_ENDS = "ends with"
_HAS = "has"
_ALL = "all"
_GLOBAL = "global"
_LPAREN = "("
_RPAREN = ")"
_AND = "&&"
_OR = "||"
_EOF = "eof"

_IDENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-")
_BLANKS = " \t"
_SIMPLE = {"(": _LPAREN, ")": _RPAREN, "{": _LBRACE, "}": _RBRACE, ",": _COMMA}
# Operators after a label: (token, words).  Order matters only for reporting; the word-boundary
# rule makes the alternatives mutually exclusive.
_WORD_OPERATORS = (
    (_CONTAINS, ("contains",)),
    (_STARTS, ("starts", "with")),
    (_ENDS, ("ends", "with")),
    (_NOTIN, ("not", "in")),
    (_IN, ("in",)),
)


def _show_char(c: str) -> str:
    if c == "\n":
        return "a newline"
    if c == "\r":
        return "a carriage return"
    return repr(c)


class _Token(object):
    __slots__ = ("kind", "value", "start")

    def __init__(self, kind: str, value: Optional[str], start: int) -> None:
        self.kind = kind
        self.value = value
        self.start = start

    def describe(self) -> str:
        if self.kind == _EOF:
            return "the end of the selector"
        if self.kind == _LABEL:
            return "label '%s'" % self.value
        if self.kind == _STRING:
            return "a string literal"
        if self.kind == _HAS:
            return "'has(%s)'" % self.value
        if self.kind in (_ALL, _GLOBAL):
            return "'%s()'" % self.kind
        return "'%s'" % self.kind


class _Lexer(object):
    """Produces tokens on demand.  Which words are operators depends on the previous token, as in
    Calico's tokenizer; producing tokens lazily lets errors be reported at the first position where
    the text stops being the beginning of a valid selector."""

    __slots__ = ("text", "pos", "last", "last_value")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.last = None  # kind of the previous token
        self.last_value = None

    def error(self, position: int, reason: str) -> SelectorError:
        return SelectorError(self.text, position, reason)

    def _skip_blanks(self, i: int) -> int:
        text = self.text
        n = len(text)
        while i < n and text[i] in _BLANKS:
            i += 1
        return i

    def _word_end(self, i: int) -> int:
        text = self.text
        n = len(text)
        while i < n and text[i] in _IDENT_CHARS:
            i += 1
        return i

    def _boundary(self, i: int) -> bool:
        return i >= len(self.text) or self.text[i] not in _IDENT_CHARS

    def _operator_after_label(self, i: int) -> Tuple[Optional[str], int]:
        text = self.text
        for kind, words in _WORD_OPERATORS:
            j = i
            for k, word in enumerate(words):
                if k:
                    j = self._skip_blanks(j)
                if not text.startswith(word, j):
                    break
                j += len(word)
            else:
                if self._boundary(j):
                    return kind, j
        return None, i

    def _identifier(self, i: int, what: str) -> Tuple[str, int]:
        j = self._word_end(i)
        if j == i:
            if i >= len(self.text):
                raise self.error(i, "expected %s, found the end of the selector" % what)
            raise self.error(i, "expected %s, found %s" % (what, _show_char(self.text[i])))
        if j - i > MAX_LABEL_LENGTH:
            raise self.error(i, "label too long (%d characters, at most %d)" % (j - i, MAX_LABEL_LENGTH))
        return self.text[i:j], j

    def next(self) -> _Token:
        tok = self._scan()
        self.last = tok.kind
        self.last_value = tok.value
        return tok

    def _scan(self) -> _Token:
        text = self.text
        n = len(text)
        i = self._skip_blanks(self.pos)
        if i >= n:
            self.pos = n
            return _Token(_EOF, None, n)
        c = text[i]
        kind = _SIMPLE.get(c)
        if kind is not None:
            self.pos = i + 1
            return _Token(kind, None, i)
        if c == '"' or c == "'":
            j = text.find(c, i + 1)
            if j < 0:
                raise self.error(i, "unterminated string literal (no closing %s)" % c)
            self.pos = j + 1
            return _Token(_STRING, text[i + 1:j], i)
        if c == "=":
            if text.startswith("==", i):
                self.pos = i + 2
                return _Token(_EQ, None, i)
            raise self.error(i, "expected '==' (a single '=' is not an operator)")
        if c == "!":
            if text.startswith("!=", i):
                self.pos = i + 2
                return _Token(_NE, None, i)
            self.pos = i + 1
            return _Token(_NOT, None, i)
        if c == "&":
            if text.startswith("&&", i):
                self.pos = i + 2
                return _Token(_AND, None, i)
            raise self.error(i, "expected '&&' (a single '&' is not an operator)")
        if c == "|":
            if text.startswith("||", i):
                self.pos = i + 2
                return _Token(_OR, None, i)
            raise self.error(i, "expected '||' (a single '|' is not an operator)")
        if self.last == _LABEL:
            kind, j = self._operator_after_label(i)
            if kind is None:
                if c in _IDENT_CHARS:
                    found = "'%s'" % text[i:self._word_end(i)]
                else:
                    found = _show_char(c)
                raise self.error(i, "expected an operator (==, !=, in, not in, contains, starts with, ends with) "
                                    "after label '%s', found %s" % (self.last_value, found))
            self.pos = j
            return _Token(kind, None, i)
        if text.startswith("has(", i):
            j = self._skip_blanks(i + 4)
            label, j = self._identifier(j, "a label name after 'has('")
            j = self._skip_blanks(j)
            if j >= n or text[j] != ")":
                raise self.error(j, "expected ')' to close 'has('")
            self.pos = j + 1
            return _Token(_HAS, label, i)
        for word, kind in (("all(", _ALL), ("global(", _GLOBAL)):
            if text.startswith(word, i):
                j = self._skip_blanks(i + len(word))
                if j >= n or text[j] != ")":
                    raise self.error(j, "expected ')' after '%s' (%s() takes no argument)" % (word, kind))
                self.pos = j + 1
                return _Token(kind, None, i)
        if c in _IDENT_CHARS:
            label, j = self._identifier(i, "a label")
            self.pos = j
            return _Token(_LABEL, label, i)
        if c in "\n\r":
            raise self.error(i, "unexpected %s (only spaces and tabs may separate tokens)" % _show_char(c))
        raise self.error(i, "unexpected character %s" % _show_char(c))


# ---------------------------------------------------------------------------------------------
# Syntax tree: tuples
#   ("all",) ("global",) ("has", label)
#   ("==" | "!=" | "contains" | "starts with" | "ends with", label, value)
#   ("in" | "not in", label, sorted-unique-values-tuple)
#   ("!", node)   ("&&", (node, node, ...))   ("||", (node, node, ...))
# And/Or nodes keep Calico's structure: "a && b && c" is one node with three operands, while
# "(a && b) && c" nests, which shows in the canonical form.
# ---------------------------------------------------------------------------------------------

_ALL_NODE = (_ALL,)
_EXPECTED_OPERAND = "expected a label, 'has(', 'all()', 'global()', '!' or '('"
_STRING_OPERATORS = (_EQ, _NE, _CONTAINS, _STARTS, _ENDS)


def _group(kind: str, operands: List[tuple]) -> tuple:
    return operands[0] if len(operands) == 1 else (kind, tuple(operands))


def _parse_comparison(lexer: _Lexer, label_tok: _Token) -> tuple:
    label = label_tok.value
    op = lexer.next()
    if op.kind in _STRING_OPERATORS:
        lit = lexer.next()
        if lit.kind != _STRING:
            raise lexer.error(lit.start, "expected a string literal after '%s', found %s" % (op.kind, lit.describe()))
        return (op.kind, label, lit.value)
    if op.kind in (_IN, _NOTIN):
        brace = lexer.next()
        if brace.kind != _LBRACE:
            raise lexer.error(brace.start, "expected '{' after '%s', found %s" % (op.kind, brace.describe()))
        values = []
        tok = lexer.next()
        while tok.kind == _STRING:
            values.append(tok.value)
            tok = lexer.next()
            if tok.kind != _COMMA:
                if tok.kind != _RBRACE:
                    raise lexer.error(tok.start, "expected ',' or '}' after a set item, found %s" % tok.describe())
                break
            tok = lexer.next()
        if tok.kind != _RBRACE:
            raise lexer.error(tok.start, "expected a string literal or '}' in set, found %s" % tok.describe())
        return (op.kind, label, tuple(sorted(set(values))))
    raise lexer.error(op.start, "expected an operator (==, !=, in, not in, contains, starts with, ends with) "
                                "after label '%s', found %s" % (label, op.describe()))


def _parse_tree(text: str) -> tuple:
    """Parse ``text`` into a tuple tree, raising SelectorError.  Iterative: parentheses nest on an
    explicit stack, so the nesting depth is unbounded."""
    lexer = _Lexer(text)
    tok = lexer.next()
    if tok.kind == _EOF:
        return _ALL_NODE
    stack = []  # enclosing groups: (or_operands, and_operands, negated, lparen_position)
    ors: List[tuple] = []
    ands: List[tuple] = []
    while True:
        # An operand: any number of "!" then a primary or "(".
        negated = False
        while tok.kind == _NOT:
            negated = not negated
            tok = lexer.next()
        kind = tok.kind
        if kind == _LPAREN:
            stack.append((ors, ands, negated, tok.start))
            ors, ands = [], []
            tok = lexer.next()
            if tok.kind == _RPAREN:
                raise lexer.error(tok.start, "empty parentheses; %s inside them" % _EXPECTED_OPERAND)
            continue
        if kind == _LABEL:
            node = _parse_comparison(lexer, tok)
        elif kind == _HAS:
            node = (_HAS, tok.value)
        elif kind == _ALL or kind == _GLOBAL:
            node = (kind,)
        else:
            raise lexer.error(tok.start, "%s, found %s" % (_EXPECTED_OPERAND, tok.describe()))
        if negated:
            node = (_NOT, node)
        tok = lexer.next()
        # After an operand: "&&", "||", ")" closing a group, or the end.
        while True:
            kind = tok.kind
            if kind == _AND:
                ands.append(node)
                break
            if kind == _OR:
                ands.append(node)
                ors.append(_group(_AND, ands))
                ands = []
                break
            if kind == _RPAREN and stack:
                ands.append(node)
                ors.append(_group(_AND, ands))
                node = _group(_OR, ors)
                ors, ands, negated = stack.pop()[:3]
                if negated:
                    node = (_NOT, node)
                tok = lexer.next()
                continue
            if stack:
                raise lexer.error(tok.start, "expected '&&', '||' or ')' closing the '(' opened at character %d, "
                                             "found %s" % (stack[-1][3], tok.describe()))
            if kind == _EOF:
                ands.append(node)
                ors.append(_group(_AND, ands))
                return _group(_OR, ors)
            if kind == _RPAREN:
                raise lexer.error(tok.start, "unexpected ')' without a matching '('")
            raise lexer.error(tok.start, "unexpected content at end of selector (expected '&&', '||' or the end), "
                                         "found %s" % tok.describe())
        tok = lexer.next()


# ---------------------------------------------------------------------------------------------
# Canonical form (Calico's Selector.String())
# ---------------------------------------------------------------------------------------------


def _quote(value: str) -> str:
    return "'%s'" % value if '"' in value else '"%s"' % value


def _leaf_text(node: tuple) -> str:
    kind = node[0]
    if kind == _HAS:
        return "has(%s)" % node[1]
    if kind == _ALL or kind == _GLOBAL:
        return kind + "()"
    if kind == _IN or kind == _NOTIN:
        return "%s %s {%s}" % (node[1], kind, ", ".join(_quote(v) for v in node[2]))
    return "%s %s %s" % (node[1], kind, _quote(node[2]))


def _canonical(root: tuple) -> str:
    out = []
    todo = [root]  # nodes (tuples) and literal fragments (str), processed last-in first-out
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        kind = item[0]
        if kind == _NOT:
            out.append("!")
            todo.append(item[1])
        elif kind == _AND or kind == _OR:
            sep = " %s " % kind
            todo.append(")")
            operands = item[1]
            for k in range(len(operands) - 1, -1, -1):
                todo.append(operands[k])
                if k:
                    todo.append(sep)
            out.append("(")
        else:
            out.append(_leaf_text(item))
    return "".join(out)


def _walk(root: tuple):
    todo = [root]
    while todo:
        node = todo.pop()
        yield node
        if node[0] == _NOT:
            todo.append(node[1])
        elif node[0] == _AND or node[0] == _OR:
            todo.extend(node[1])


def _required(root: tuple) -> Optional[Tuple[str, Tuple[str, ...]]]:
    """(label, values) that every match must carry (``label == v`` or ``label in {...}``, at the
    top or in a top-level ``&&``), for an index lookup; None when there is no such condition."""
    operands = root[1] if root[0] == _AND else (root,)
    for node in operands:
        if node[0] == _EQ:
            return node[1], (node[2],)
        if node[0] == _IN:
            return node[1], tuple(node[2])
    return None


def _depth(root: tuple) -> int:
    deepest = 0
    todo = [(root, 1)]
    while todo:
        node, d = todo.pop()
        if d > deepest:
            deepest = d
        if node[0] == _NOT:
            todo.append((node[1], d + 1))
        elif node[0] == _AND or node[0] == _OR:
            todo.extend((child, d + 1) for child in node[1])
    return deepest


# ---------------------------------------------------------------------------------------------
# Compilation to closures
# ---------------------------------------------------------------------------------------------

Matcher = Callable[[Mapping[str, str]], bool]

# Trees deeper than this are evaluated by an explicit-stack interpreter instead of nested closures,
# so that matching can never exceed the recursion limit.  Real selectors are a few levels deep.
_CLOSURE_DEPTH_LIMIT = 64


def _always(labels: Mapping[str, str]) -> bool:
    return True


def _never(labels: Mapping[str, str]) -> bool:
    return False


def _leaf_matcher(kind: str, label: str, value, negated: bool) -> Matcher:
    """A closure for one comparison, with a negation folded in where Calico's semantics allow:
    ``!(a == v)`` is exactly ``a != v`` and ``!(a in S)`` exactly ``a not in S`` (also for missing
    labels)."""
    if kind == _HAS:
        if negated:
            return lambda labels: label not in labels
        return lambda labels: label in labels
    if kind == _NE:
        kind, negated = _EQ, not negated
    elif kind == _NOTIN:
        kind, negated = _IN, not negated
    if kind == _EQ:
        if negated:
            return lambda labels: labels.get(label) != value
        return lambda labels: labels.get(label) == value
    if kind == _IN:
        members = frozenset(value)
        if not members:
            return _always if negated else _never
        if len(members) == 1:
            (single,) = members
            if negated:
                return lambda labels: labels.get(label) != single
            return lambda labels: labels.get(label) == single
        if negated:
            return lambda labels: labels.get(label) not in members
        return lambda labels: labels.get(label) in members
    if kind == _CONTAINS:
        def test(labels):
            got = labels.get(label)
            return got is not None and value in got
    elif kind == _STARTS:
        def test(labels):
            got = labels.get(label)
            return got is not None and got.startswith(value)
    else:  # ends with
        def test(labels):
            got = labels.get(label)
            return got is not None and got.endswith(value)
    if negated:
        return lambda labels: not test(labels)
    return test


def _combine(kind: str, parts: List[Matcher]) -> Matcher:
    """All (``&&``) or any (``||``) of ``parts``, constants already removed."""
    if kind == _AND:
        if not parts:
            return _always
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            a, b = parts
            return lambda labels: a(labels) and b(labels)
        if len(parts) == 3:
            a, b, c = parts
            return lambda labels: a(labels) and b(labels) and c(labels)
        tuple_parts = tuple(parts)

        def every(labels):
            for part in tuple_parts:
                if not part(labels):
                    return False
            return True
        return every
    if not parts:
        return _never
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda labels: a(labels) or b(labels)
    if len(parts) == 3:
        a, b, c = parts
        return lambda labels: a(labels) or b(labels) or c(labels)
    tuple_parts = tuple(parts)

    def some(labels):
        for part in tuple_parts:
            if part(labels):
                return True
        return False
    return some


def _compile_closure(node: tuple, negated: bool = False) -> Matcher:
    kind = node[0]
    if kind == _NOT:
        return _compile_closure(node[1], not negated)
    if kind == _ALL or kind == _GLOBAL:
        return _never if negated else _always
    if kind == _AND or kind == _OR:
        # De Morgan pushes a negation down to the leaves, where it is free.
        effective = kind if not negated else (_OR if kind == _AND else _AND)
        absorbing = _never if effective == _AND else _always
        parts: List[Matcher] = []
        # Flatten nested groups of the same effective kind (evaluation only; the canonical form
        # keeps the structure).
        todo = [(child, negated) for child in reversed(node[1])]
        while todo:
            child, neg = todo.pop()
            while child[0] == _NOT:
                child, neg = child[1], not neg
            child_kind = child[0]
            if child_kind in (_AND, _OR):
                child_effective = child_kind if not neg else (_OR if child_kind == _AND else _AND)
                if child_effective == effective:
                    todo.extend((grandchild, neg) for grandchild in reversed(child[1]))
                    continue
            part = _compile_closure(child, neg)
            if part is absorbing:
                return absorbing
            if part is _always or part is _never:
                continue  # the neutral element of this group
            parts.append(part)
        return _combine(effective, parts)
    if kind == _HAS:
        return _leaf_matcher(kind, node[1], None, negated)
    return _leaf_matcher(kind, node[1], node[2], negated)


def _compile_program(root: tuple) -> Matcher:
    """Explicit-stack evaluator for very deep trees: a postfix program over a value stack."""
    program = []  # (op, arg): ("leaf", matcher) | ("not", None) | ("&&"/"||", operand count)
    todo = [(root, False)]
    while todo:
        node, expanded = todo.pop()
        kind = node[0]
        if kind == _NOT:
            if expanded:
                program.append((_NOT, None))
            else:
                todo.append((node, True))
                todo.append((node[1], False))
        elif kind == _AND or kind == _OR:
            if expanded:
                program.append((kind, len(node[1])))
            else:
                todo.append((node, True))
                todo.extend((child, False) for child in reversed(node[1]))
        else:
            program.append(("leaf", _compile_closure(node)))
    program = tuple(program)

    def run(labels):
        values = []
        push = values.append
        for op, arg in program:
            if op == "leaf":
                push(arg(labels))
            elif op == _NOT:
                values[-1] = not values[-1]
            else:
                operands = values[-arg:]
                del values[-arg:]
                push(all(operands) if op == _AND else any(operands))
        return values[0]
    return run


def _compile(root: tuple) -> Matcher:
    if _depth(root) <= _CLOSURE_DEPTH_LIMIT:
        return _compile_closure(root)
    return _compile_program(root)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


class Selector(object):
    """A parsed selector.  Immutable; equal and hashed by :attr:`canonical`.

    Attributes:
        canonical: Calico's canonical form (``Selector.String()``).
        text: the text it was parsed from.
        is_all: ``canonical == "all()"`` (the empty selector, ``all()``, ``!!all()``...).
        uses_global: the selector contains ``global()`` somewhere.
        required: ``(label, values)`` when a match needs ``label`` to have one of ``values``
            (an ``==`` or ``in`` at the top or in a top-level ``&&``), else None.  Lets callers
            look candidates up in an index by label value instead of testing everything.
        matches(labels): whether a mapping of label name to value is selected.  It is a compiled
            function stored on the instance (one call, no method dispatch).
    """

    __slots__ = ("canonical", "text", "is_all", "uses_global", "required", "matches", "_hash")

    def __init__(self, text: str, tree: tuple) -> None:
        canonical = _canonical(tree)
        setter = object.__setattr__
        setter(self, "canonical", canonical)
        setter(self, "text", text)
        setter(self, "is_all", canonical == "all()")
        setter(self, "uses_global", any(node[0] == _GLOBAL for node in _walk(tree)))
        setter(self, "required", _required(tree))
        setter(self, "matches", _compile(tree))
        setter(self, "_hash", hash(canonical))

    def __setattr__(self, name, value):
        raise AttributeError("Selector objects are immutable")

    def __delattr__(self, name):
        raise AttributeError("Selector objects are immutable")

    def __eq__(self, other):
        if isinstance(other, Selector):
            return self.canonical == other.canonical
        return NotImplemented

    def __ne__(self, other):
        if isinstance(other, Selector):
            return self.canonical != other.canonical
        return NotImplemented

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return self.canonical

    def __repr__(self) -> str:
        return "Selector(%r)" % self.canonical

    def __reduce__(self):
        # Re-parse the original text: the canonical form does not always re-parse to itself
        # (Calico prints "!(!x)" as "!!x", which parses back as "x").
        return (parse, (self.text,))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


@functools.lru_cache(maxsize=1 << 17)
def _parse_cached(text: str) -> Selector:
    return Selector(text, _parse_tree(text))


def parse(text: str) -> Selector:
    """Parse a Calico selector (memoised).  Raises :class:`SelectorError` for invalid input,
    including a non-string."""
    if not isinstance(text, str):
        raise SelectorError(repr(text), 0, "a selector must be a string, not %s" % type(text).__name__)
    if text.__class__ is not str:
        text = str.__str__(text)  # a str subclass (e.g. a tagged Ansible string): use the plain text
    return _parse_cached(text)


parse.cache_info = _parse_cached.cache_info  # type: ignore[attr-defined]
parse.cache_clear = _parse_cached.cache_clear  # type: ignore[attr-defined]

ALL = parse("all()")
