"""assistant: the service the CLI, the UI and the eval call.

Importing it stays light: no torch, faiss or gradio at import time.
"""

from assistant.library import ALL_BUNDLED, collection_names, describe, load_documents

__all__ = ["ALL_BUNDLED", "collection_names", "describe", "load_documents"]
