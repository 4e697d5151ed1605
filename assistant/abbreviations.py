"""Abbreviations in a question (软著, 知产, 商秘), read as the compound the documents use.

People shorten a compound to the first character of each of its words: 软件著作权 → 软著,
知识产权 → 知产, 商业秘密 → 商秘. The documents never use the short form, so BM25 finds nothing
for it, e5 reads it as noise, and the answer checks miss the subject. No word list is kept here:
the expansion is read off the index itself. A question word that jieba does not know (or tags as an
abbreviation) and that no indexed chunk uses is tried against pairs (or triples) of the index's
words, each starting with one of its characters; a compound that stands as such, several times, in
the chunks BM25 finds for those words is its expansion, when no other compound comes near it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from itertools import product

from index.text import jieba_frequency, tag

_HAN = re.compile(r"[\u4e00-\u9fff]{2,3}")
RARE = 5  # jieba frequency below which a question word is unknown to general Chinese
WORDS_PER_CHAR = 10  # index words tried for each character (the most frequent ones)
TEXTS = 60  # chunks searched for the compounds
MIN_COUNT = 3  # times a compound must stand in those chunks
DOMINANCE = 2.0  # and how many times more often than any other reading


@dataclass(frozen=True)
class Expansion:
    short: str  # as typed: 软著
    full: str  # as the documents write it: 软件著作权


class Abbreviations:
    """Expands a question's abbreviations against one index (cached per index vocabulary)."""

    def __init__(self, index):
        self.index = index
        self._vocab: set[str] | None = None  # held, not its id: a freed set's id can come back
        self._by_char: dict[str, list[str]] = {}
        self._cache: dict[str, str | None] = {}

    def expand(self, text: str, keep: tuple[str, ...] = ()) -> tuple[str, tuple[Expansion, ...]]:
        """``text`` with each abbreviation replaced by its compound, and what was replaced.
        Words inside ``keep`` (the places the question names) are never read as abbreviations."""
        vocab = self._vocabulary()
        found: list[Expansion] = []
        for word, flag in _words(text):
            if not _is_candidate(word, flag, vocab) or any(word in k for k in keep):
                continue
            # jieba may join an abbreviation to the next character (商秘罚多少 → 商秘罚): try its halves too.
            for short in (word, word[:2], word[1:]) if len(word) == 3 else (word,):
                if short != word and not _is_candidate(short, "", vocab):
                    continue
                if full := self._lookup(short):
                    if short == word[:2] != word and full.endswith(word[1:]):
                        short = word  # 签合同: 签合 read as 签订合同 already holds its 同
                    if all(e.short != short for e in found):
                        found.append(Expansion(short, full))
                    break
        for e in found:
            text = text.replace(e.short, e.full)
        return text, tuple(found)

    def _lookup(self, short: str) -> str | None:
        if short not in self._cache:
            self._cache[short] = self._resolve(short)
        return self._cache[short]

    def _vocabulary(self) -> set[str]:
        vocab = self.index.vocabulary()
        if vocab is not self._vocab:  # documents added or removed: read the words again
            self._vocab, self._cache = vocab, {}
            self._by_char = {}
            for w in vocab:
                if len(w) >= 2 and _HAN.fullmatch(w[:2]):
                    self._by_char.setdefault(w[0], []).append(w)
        return vocab

    def _resolve(self, short: str) -> str | None:
        """The compound ``short`` abbreviates, or None when none stands out."""
        choices = [self._frequent(ch) for ch in short]
        if not all(choices):
            return None
        words = list(dict.fromkeys(w for ws in choices for w in ws))
        ids = [cid for cid, _ in self.index.keyword(" ".join(words), TEXTS)]
        texts = [c.text for c in self.index.chunks(ids).values()]
        if any(_used(short, t) for t in texts if short in t):  # the documents use it as it is
            return None
        counts = Counter()
        for parts in product(*choices):
            compound = "".join(parts)
            if n := sum(t.count(compound) for t in texts):
                counts[compound] = n
        return _dominant(counts)

    def _frequent(self, ch: str) -> list[str]:
        words = self._by_char.get(ch, [])
        if not words:
            return []
        df, _ = self.index.term_stats(words)
        return sorted(words, key=lambda w: (-df.get(w, 0), w))[:WORDS_PER_CHAR]


def _used(short: str, text: str) -> bool:
    """Whether ``text`` uses ``short``: an occurrence inside one of its words (抗辩权 holds 辩权) or made of
    whole words. "提高企业" holds 高企 only across two words (提高 企业): no use of it."""
    bounds, offset = {0}, 0
    for word, _ in tag(text):
        offset += len(word)
        bounds.add(offset)
    i = text.find(short)
    while i >= 0:
        end = i + len(short)
        if not any(i < b < end for b in bounds) or (i in bounds and end in bounds):
            return True
        i = text.find(short, i + 1)
    return False


# Tags of a character jieba left alone that may be half of an abbreviation (高/a 企/ng in 高企): not
# adverbs, particles, pronouns, numbers or measure words (都/d 得/ud).
_ABBREVIABLE = re.compile(r"^(?:n|a|b|j)")


def _words(text: str) -> list[tuple[str, str]]:
    """The tagged words of ``text``, and two characters jieba left apart joined as one more word:
    "高企" comes out as 高/a 企/ng."""
    tagged = tag(text)
    pairs = [(a + b, "") for (a, fa), (b, fb) in zip(tagged, tagged[1:])
             if len(a) == len(b) == 1 and _ABBREVIABLE.match(fa) and _ABBREVIABLE.match(fb)]
    return tagged + pairs


def _is_candidate(word: str, flag: str, vocab: set[str]) -> bool:
    """A 2–3 character word that general Chinese does not know (or jieba tags as an abbreviation,
    ``j``) and that no indexed chunk has as a word."""
    if not _HAN.fullmatch(word) or word in vocab:
        return False
    return flag == "j" or jieba_frequency(word) < RARE


def _dominant(counts: Counter) -> str | None:
    """The most frequent compound when it is frequent and clearly ahead of every other reading; of
    two readings that always stand together (软件著作 inside 软件著作权) the longer."""
    if not counts:
        return None
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], -len(kv[0])))
    best, n = ranked[0]
    rivals = [m for c, m in ranked[1:] if c not in best and best not in c]
    if n < MIN_COUNT or (rivals and n < DOMINANCE * rivals[0]):
        return None
    return best

