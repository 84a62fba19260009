"""Sources: turn a remote reference (``https://...``, ``hf://owner/repo@rev``) into verified,
scanned local files, without ever letting an unverified byte land where a loader will read it.

Modules: ``interface`` (data model and the Source contract), ``http`` (the one HTTP client:
TLS always on, manual redirects, retries with Range resume, size limits, hashing while
streaming; the retry budget and per-file body state live in ``transfer``), ``url`` (plain URLs, torch.hub file-name prefixes), ``hf`` (Hugging Face Hub:
commit pinning, tree listing as the manifest), ``quarantine`` (staging next to the
destination, atomic promotion), ``fetch`` (orchestration and findings), ``remote`` (what
``mlscan scan URL`` uses), ``progress`` (a byte progress bar on a terminal).

``requests`` is imported only inside :mod:`scanner.sources.http`, and only when a request is
made, so nothing here slows CLI start-up.
"""
