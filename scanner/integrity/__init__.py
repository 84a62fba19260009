"""Integrity: streaming hashing, manifests (OMS bundles and zoo checksum conventions),
signatures with ``cryptography``, and verification of a model tree against a manifest.

Modules: ``interface`` (data model), ``hashing``, ``keys``, ``dsse``, ``oms``, ``signature``
(trust decisions), ``manifests`` (readers), ``tree``, ``cache``, ``verify`` (the diff and its
findings), ``session`` (the workflows the CLI and the registry share).
"""
