"""Vector stores behind ``rag.store.VectorStore``, one module each, registered by name in
``rag.store`` (``chroma``: ``rag.stores.chroma``). Nothing here is imported until a store is
opened, so a store's client library is loaded only when that store is used."""
