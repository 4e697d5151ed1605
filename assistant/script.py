"""Questions typed in traditional characters (專利保護幾年), read in the simplified ones the documents use.

The bundled documents, jieba's dictionary and the BM25 index are all simplified Chinese; a question
in traditional characters matched none of their words and was refused as outside the knowledge base.
OpenCC's character table (``t2s``) turns it into simplified characters. Only the character table is
used, not the Taiwan phrase table (``tw2sp``), which also rewrites simplified text (怎么 → 怎幺); the
character table leaves every simplified question of the eval datasets as it is. A character the
index's own words use is left as typed: documents indexed in traditional characters are asked in them.
"""

from __future__ import annotations

import threading
from collections.abc import Container, Iterable
from functools import lru_cache

_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _converter():
    from opencc import OpenCC

    return OpenCC("t2s")


def simplified(text: str, keep: Container[str] = ()) -> str:
    """``text`` with its traditional characters in simplified form (unchanged when it has none), but
    for those in ``keep``: the characters an index's own words use, so a knowledge base written in
    traditional characters is still asked in them."""
    if not text or text.isascii():
        return text
    with _LOCK:  # the converter keeps state between calls
        out = _converter().convert(text)
        if not keep or out == text:
            return out
        if len(out) != len(text):  # a phrase changed length: convert character by character
            out = "".join(_converter().convert(c) for c in text)
    return "".join(typed if typed in keep else plain for typed, plain in zip(text, out))


def characters(words: Iterable[str]) -> frozenset[str]:
    """Every character of ``words`` (an index's vocabulary)."""
    return frozenset(c for w in words for c in w)
