"""index: clause-aware chunks, embeddings, FAISS + BM25 (built in a later issue)."""
