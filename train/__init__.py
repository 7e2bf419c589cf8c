"""Training scripts for the models shipped under ``rag/models/`` (not part of the runtime)."""
