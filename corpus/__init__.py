"""corpus: from files on disk to cleaned, structured ``Document`` records.

Public API::

    load_document(path) -> Document          # raises UnsupportedDocument
    load_folder(folder) -> LoadReport         # documents + failures, never stops on a bad file
    load_collection("policies" | "laws") -> LoadReport
"""

from corpus.bundled import DEFAULT_COLLECTION, bundled_collections, get_collection, load_collection
from corpus.documents import LoadReport, document_from_text, load_document, load_folder
from corpus.errors import IpqaError, UnknownCollection, UnsupportedDocument
from corpus.numerals import normalize_number
from corpus.types import Clause, Document, Revision

__all__ = [
    "Clause", "DEFAULT_COLLECTION", "Document", "IpqaError", "LoadReport", "Revision", "UnknownCollection",
    "UnsupportedDocument", "bundled_collections", "document_from_text", "get_collection", "load_collection",
    "load_document", "load_folder", "normalize_number",
]
