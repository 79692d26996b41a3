"""Knowledge: sources, chunks, embeddings, the store, hybrid search and incremental sync."""
