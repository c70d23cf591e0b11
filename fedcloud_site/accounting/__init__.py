"""Accounting extractor: APEL cloud usage records from the cloud into the outgoing queue."""
