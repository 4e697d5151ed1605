"""Questions typed in traditional characters (專利保護幾年), read in the simplified ones the documents use.

The bundled documents, jieba's dictionary and the BM25 index are all simplified Chinese; a question
in traditional characters matched none of their words and was refused as outside the knowledge base.
OpenCC's character table (``t2s``) turns it into simplified characters. Only the character table is
used, not the Taiwan phrase table (``tw2sp``), which also rewrites simplified text (怎么 → 怎幺); the
character table leaves every simplified question of the eval datasets as it is.
"""

from __future__ import annotations

import threading
from functools import lru_cache

_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _converter():
    from opencc import OpenCC

    return OpenCC("t2s")


def simplified(text: str) -> str:
    """``text`` with its traditional characters in simplified form (unchanged when it has none)."""
    if not text or text.isascii():
        return text
    with _LOCK:  # the converter keeps state between calls
        return _converter().convert(text)
