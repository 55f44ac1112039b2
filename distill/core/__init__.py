"""Shared by two or more stages: errors, config, log, stop handling, schemas, manifests and shards, the
model sources and teachers, chat-template probing. Imports only the standard library and third-party packages."""
