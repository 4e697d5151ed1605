"""assistant: the service the CLI, the UI and the eval call.

Importing it stays light: no torch, faiss or gradio at import time.
"""

from assistant.library import ALL_BUNDLED, collection_names, describe, load_documents
from corpus.errors import (IndexDamaged, IndexMismatch, IndexNotBuilt, IndexReembedded, InvalidQuestion, IpqaError,
                           UnsupportedDocument)


def __getattr__(name):
    # The index API pulls numpy; load it only when asked for.
    import importlib

    indexing = importlib.import_module("assistant.indexing")
    if name in indexing.__all__:
        return getattr(indexing, name)
    raise AttributeError(name)


__all__ = ["ALL_BUNDLED", "collection_names", "describe", "load_documents", "add_documents", "add_files", "default_index_dir",
           "index_sources", "indexed_document_ids", "open_index", "read_file", "reembed", "remove_documents", "Filters", "IndexDamaged", "IndexMismatch",
           "IndexNotBuilt", "IndexReembedded", "InvalidQuestion", "IpqaError", "UnsupportedDocument"]
