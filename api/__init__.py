"""FastAPI apps: ingest routes, read routes, health."""
