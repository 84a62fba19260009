"""The trusted manifest registry: local SQLite state (``store``), trust operations
(``operations``), signed static distribution (``metadata``, ``publish``, ``sync``) and scan
lookups (``lookup``). See signing research notes section 4.3 for the TUF-lite design."""
