"""Keyword tokens: jieba in search mode with an IP-policy dictionary and stopwords."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from functools import lru_cache
from importlib import resources

log = logging.getLogger(__name__)
_KEEP = re.compile(r"[\w\u3400-\u9fff]", re.UNICODE)
_LOCK = threading.Lock()


def _data(name: str) -> str:
    return (resources.files("index") / "data" / name).read_text(encoding="utf-8")


def dictionary_hash() -> str:
    """Changes whenever the user dictionary or stopwords change (stored in the manifest)."""
    digest = hashlib.sha256((_data("ip_terms.txt") + "\0" + _data("stopwords.txt")).encode("utf-8"))
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def _colloquial() -> list[tuple[tuple[str, ...], str]]:
    rules = []
    for line in _data("colloquial.txt").splitlines():
        if not line.strip() or line.startswith("#") or "=>" not in line:
            continue
        phrases, terms = line.split("=>", 1)
        rules.append((tuple(p.strip() for p in phrases.split("|") if p.strip()), terms.strip()))
    return rules


def colloquial_matches(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """(phrase found in ``text``, the document words for it) for every colloquial rule that applies."""
    out = []
    for phrases, terms in _colloquial():
        found = next((p for p in phrases if p in text), None)
        if found:
            out.append((found, tuple(terms.split())))
    return out


def expand_colloquial(text: str) -> str:
    """``text`` plus the document words for the colloquial phrases it uses
    ("能保护多少年" adds "期限 保护期 有效期"); unchanged when none match."""
    added = [terms for phrases, terms in _colloquial() if any(p in text for p in phrases)]
    return f"{text} {' '.join(added)}" if added else text


@lru_cache(maxsize=1)
def law_domains() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(title word, question words) per legal domain, from data/law_domains.txt."""
    rules = []
    for line in _data("law_domains.txt").splitlines():
        if not line.strip() or line.startswith("#") or "=>" not in line:
            continue
        title_word, words = line.split("=>", 1)
        rules.append((title_word.strip(), tuple(w.strip() for w in words.split("|") if w.strip())))
    return tuple(rules)


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    return frozenset(w.strip() for w in _data("stopwords.txt").splitlines() if w.strip())


def is_stopword(token: str) -> bool:
    return token in _stopwords()


@lru_cache(maxsize=1)
def _tokenizer():
    import io

    import jieba

    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    tok.load_userdict(io.StringIO(_data("ip_terms.txt")))
    return tok


def tokenize(text: str) -> list[str]:
    """Search-mode tokens of ``text``: each word and every dictionary word inside it
    (知识产权质押融资 → 知识, 产权, 知识产权, 质押, 融资, …), lower-cased, without
    punctuation and stopwords. Numbers are kept: figures matter here.

    jieba's own search mode adds only 2- and 3-character sub-words, so a query
    for 知识产权 would miss documents that say 知识产权质押融资.
    """
    tok = _tokenizer()
    with _LOCK:  # jieba's tokenizer initialises lazily and is not thread-safe then
        words = tok.lcut(text)
        freq = tok.FREQ
    stop = _stopwords()
    out: list[str] = []
    for word in words:
        word = word.strip()
        if not word or not _KEEP.search(word):
            continue
        for n in range(2, len(word)):
            for i in range(len(word) - n + 1):
                sub = word[i:i + n]
                if freq.get(sub) and sub not in stop:
                    out.append(sub.lower())
        if word not in stop:
            out.append(word.lower())
    return out


def jieba_frequency(word: str) -> int:
    """How often general Chinese uses ``word`` (jieba's dictionary count; 0 for a word it does not know)."""
    tok = _tokenizer()
    with _LOCK:
        tok.check_initialized()
        return tok.FREQ.get(word) or 0


@lru_cache(maxsize=1)
def _tagger():
    import jieba.posseg

    return jieba.posseg.POSTokenizer(_tokenizer())


def tag(text: str) -> list[tuple[str, str]]:
    """(word, part of speech) of ``text`` in jieba's accurate mode, with the same IP dictionary as
    ``tokenize`` (高价值发明专利 stays one noun)."""
    tagger = _tagger()
    with _LOCK:
        return [(p.word, p.flag) for p in tagger.lcut(text)]


@lru_cache(maxsize=1)
def _plain_tokenizer():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba.Tokenizer()  # jieba's own dictionary only: splits the IP dictionary's compounds


def parts(word: str) -> list[str]:
    """``word`` cut by jieba's own dictionary, a single character kept with its neighbour
    (高价值发明专利 → 高价值, 发明专利; 驰名商标 → 驰名商标)."""
    tok = _plain_tokenizer()
    with _LOCK:
        pieces = [w for w in tok.lcut(word, HMM=False) if w.strip()]
    out: list[str] = []
    carry = ""
    for piece in pieces:
        if len(piece) == 1 and not out and not carry:
            carry = piece
        elif len(piece) == 1 and not out:  # two single characters first (万, 人): one piece, 万人
            out, carry = [carry + piece], ""
        elif len(piece) == 1:
            out[-1] += piece
        else:
            out.append(carry + piece)
            carry = ""
    return out if out else ([carry] if carry else [])


