"""Regular expressions matched in time linear in the text: Python's `re` syntax and meaning, run as a Thompson
NFA with a lazily built, cached DFA, so a silence's `(a|a)*b` cannot stall the engine round or the alerts page.

Patterns are parsed by `re`'s own parser (private `re._parser`; the tests compare answers with `re` on random
patterns, so a change in a new Python shows); what only a backtracking engine can match (backreferences,
lookarounds, conditionals, atomic groups, possessive repeats) and automata over REGEX_MAX_STATES are refused.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

#: most states of one regex's automaton (a repeat {m,n} copies its body n times)
REGEX_MAX_STATES = 4096
#: the largest n of a repeat {m,n}: RE2's limit, which Alertmanager's regexes have
REGEX_MAX_REPEAT = 1000
#: a label value longer than this never satisfies a regex matcher (=~ nor !~), so it is never muted by one
REGEX_MAX_VALUE_CHARS = 4096
#: the cached steps of one regex: at most this many, holding at most _DFA_CACHE_MAX_STATES NFA states in all
#: (a few MB); past either the cache starts again. Keys are the state sets themselves, so threads share it safely.
_DFA_CACHE_MAX = 10_000
_DFA_CACHE_MAX_STATES = 100_000
_CHAR, _SPLIT, _ASSERT, _MATCH = range(4)
_UNSUPPORTED = {"GROUPREF": "a backreference", "GROUPREF_EXISTS": "a conditional group", "ASSERT": "a lookaround",
                "ASSERT_NOT": "a lookaround", "ATOMIC_GROUP": "an atomic group",
                "POSSESSIVE_REPEAT": "a possessive repeat"}


class UnsupportedRegex(ValueError):
    """A regex that only a backtracking engine could match, or one too large."""


class LinearRegex:
    """A fully anchored regex of Python `re` syntax, matched in time linear in the text, as RE2 matches.

    Python's `re` backtracks: `(a|a)*b` against 40 `a`s would take longer than the universe, inside the engine
    round and the alerts page. Here the pattern is parsed by `re`'s own parser (so syntax and meaning are
    `re`'s), turned into a Thompson NFA and run as a DFA built lazily, state set by state set, and cached: each
    character costs one cached step, or at worst one pass over the NFA's states. Each character test is `re`'s
    own, compiled for that one item. What needs backtracking (backreferences, lookarounds, conditionals, atomic
    groups, possessive repeats) is refused, as RE2, and so Alertmanager, refuses it.
    """

    def __init__(self, pattern: str) -> None:
        """Parse and compile the pattern; raise UnsupportedRegex or re.error."""
        import re._parser as parser

        self.pattern = pattern
        self._kind: list[int] = []
        self._arg: list[Any] = []
        self._out: list[int] = []
        self._out2: list[int] = []
        self.has_assertions = False
        parsed = parser.parse(pattern)
        try:
            self._start = self._sequence(list(parsed), parsed.state.flags, self._add(_MATCH))
        except RecursionError:
            raise UnsupportedRegex("nested too deeply") from None
        self._cache: dict[Any, frozenset[int]] = {}
        self._cached_states = 0

    def fullmatch(self, text: str) -> bool:
        """Return whether the whole text matches."""
        context = self._context(text, 0) if self.has_assertions else None
        states = self._closure(frozenset((self._start,)), context)
        cache = self._cache
        for i, char in enumerate(text):
            if self.has_assertions:
                context = self._context(text, i + 1)
            key = (states, char, context)
            following = cache.get(key)
            if following is None:
                following = self._closure(self._step(states, char), context)
                self._cached_states += len(following)
                if len(cache) >= _DFA_CACHE_MAX or self._cached_states > _DFA_CACHE_MAX_STATES:
                    cache.clear()
                    self._cached_states = len(following)
                cache[key] = following
            states = following
            if not states:
                return False
        return self._match in states

    # --- building the NFA ------------------------------------------------------------------------------------

    def _add(self, kind: int, arg: Any = None, out: int = -1, out2: int = -1) -> int:
        """Add a state; return its number."""
        if len(self._kind) >= REGEX_MAX_STATES:
            raise UnsupportedRegex(f"too large: more than {REGEX_MAX_STATES} states (a repeat {{m,n}} copies its "
                               "body n times)")
        self._kind.append(kind)
        self._arg.append(arg)
        self._out.append(out)
        self._out2.append(out2)
        if kind == _MATCH:
            self._match = len(self._kind) - 1
        return len(self._kind) - 1

    def _sequence(self, items: list, flags: int, following: int) -> int:
        """Compile items to run before state `following`; return the first state."""
        for op, av in reversed(items):
            following = self._item(op, av, flags, following)
        return following

    def _item(self, op: Any, av: Any, flags: int, following: int) -> int:
        """Compile one parsed item to run before `following`; return its first state."""
        import re._constants as c

        if op in (c.LITERAL, c.NOT_LITERAL, c.ANY, c.IN):
            return self._add(_CHAR, _char_test(op, av, flags), following)
        if op is c.BRANCH:
            starts = [self._sequence(list(alternative), flags, following) for alternative in av[1]]
            first = starts.pop()
            for start in reversed(starts):
                first = self._add(_SPLIT, None, start, first)
            return first
        if op is c.SUBPATTERN:
            _group, add_flags, del_flags, items = av
            type_flags = c.SRE_FLAG_ASCII | c.SRE_FLAG_LOCALE | c.SRE_FLAG_UNICODE
            if add_flags & type_flags:  # (?a:...) or (?u:...) replaces the other type flag, as re's compiler does
                flags &= ~type_flags
            return self._sequence(list(items), (flags | add_flags) & ~del_flags, following)
        if op in (c.MAX_REPEAT, c.MIN_REPEAT):  # lazy or greedy: the same strings match whole
            low, high, items = av
            items = list(items)
            if high is c.MAXREPEAT or high == c.MAXREPEAT:
                loop = self._add(_SPLIT, None, -1, following)
                self._out[loop] = self._sequence(items, flags, loop)
                start = loop
            else:
                if high > REGEX_MAX_REPEAT:
                    raise UnsupportedRegex(f"a repeat of more than {REGEX_MAX_REPEAT}, as in RE2")
                start = following
                for _ in range(high - low):
                    start = self._add(_SPLIT, None, self._sequence(items, flags, start), following)
            for _ in range(low):
                start = self._sequence(items, flags, start)
            return start
        if op is c.AT:
            self.has_assertions = True
            return self._add(_ASSERT, (av, bool(flags & c.SRE_FLAG_MULTILINE), bool(flags & c.SRE_FLAG_ASCII)),
                             following)
        raise UnsupportedRegex(f"{_UNSUPPORTED.get(str(op), str(op))}: silences match in time linear in the value, as "
                           "Alertmanager's RE2 does, which rules out backreferences, lookarounds, conditionals, "
                           "atomic groups and possessive repeats")

    # --- running it ------------------------------------------------------------------------------------------

    def _closure(self, states: frozenset[int], context: Any) -> frozenset[int]:
        """Return the character-testing and matching states reachable from states without reading a character."""
        seen: set[int] = set()
        kept: list[int] = []
        todo = list(states)
        kind, out, out2, arg = self._kind, self._out, self._out2, self._arg
        while todo:
            state = todo.pop()
            if state in seen:
                continue
            seen.add(state)
            if kind[state] == _SPLIT:
                todo += (out2[state], out[state])
            elif kind[state] == _ASSERT:
                if _holds(arg[state], context):
                    todo.append(out[state])
            else:
                kept.append(state)
        return frozenset(kept)

    def _step(self, states: frozenset[int], char: str) -> frozenset[int]:
        """Return the states after reading char from states."""
        return frozenset(self._out[state] for state in states
                         if self._kind[state] == _CHAR and self._arg[state](char))

    @staticmethod
    def _context(text: str, i: int) -> tuple:
        """Return what the assertions at position i look at: the characters either side and whether the next
        one is the last."""
        return (_char_class(text[i - 1]) if i > 0 else None, _char_class(text[i]) if i < len(text) else None,
                i == len(text) - 1)


@functools.lru_cache(maxsize=64)
def linear_regex(pattern: str) -> LinearRegex:
    """Return the LinearRegex of a pattern, shared by every matcher using it (so is its cache of steps)."""
    return LinearRegex(pattern)


def _char_test(op: Any, av: Any, flags: int) -> Callable[[str], bool]:
    """Return `re`'s own test of one character for one item (a literal, a class, `.`) under these flags."""
    import re._compiler as compiler
    import re._parser as parser

    state = parser.State()
    state.flags = flags
    compiled = compiler.compile(parser.SubPattern(state, [(op, av)]), flags)
    return lambda char: compiled.fullmatch(char) is not None


def _char_class(char: str) -> tuple[bool, bool, bool]:
    """Return what assertions ask of a character: a newline, a word character (Unicode), a word character (ASCII)."""
    return (char == "\n", char.isalnum() or char == "_", char.isascii() and (char.isalnum() or char == "_"))


def _holds(assertion: tuple, context: tuple) -> bool:
    """Return whether an assertion (^, $, \\A, \\Z, \\b, \\B with its flags) holds in a position's context."""
    import re._constants as c

    code, multiline, ascii_only = assertion
    before, after, next_is_last = context
    if code in (c.AT_BEGINNING, c.AT_BEGINNING_STRING):
        return before is None or (code is c.AT_BEGINNING and multiline and before[0])
    if code is c.AT_END_STRING:
        return after is None
    if code is c.AT_END:
        return after is None or (after[0] and (multiline or next_is_last))
    if before is None and after is None:
        return False  # re finds no word boundary, and no non-boundary either, in the empty string
    word = 2 if ascii_only else 1
    differ = (before is not None and before[word]) != (after is not None and after[word])
    return differ if code is c.AT_BOUNDARY else not differ
