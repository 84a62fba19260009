"""``mlscan scan URL|hf://...``: download into a temporary quarantine, verify, hand the local
copies to the normal scan, and remove them afterwards.

Nothing is kept, so there is nothing to promote; verification still matters. A file that does
not match what its source vouches for (digest, size, an LFS pointer instead of content) stops
the scan with an input error (exit 2): a report about bytes nobody vouched for would describe
the wrong model. Everything else the fetch learned (the pinned commit, "no digest to check",
weak or partial digests) is kept in :attr:`RemoteTargets.findings` and ``metadata`` for
:meth:`RemoteTargets.annotate` to merge into the scan result.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from scanner.core.finding import Finding
from scanner.core.result import ScanResult
from scanner.sources.interface import FetchError, is_remote


@dataclass
class RemoteTargets:
    """The scan targets with every remote one replaced by its local (quarantined) copy."""

    paths: tuple[str, ...]
    findings: list[Finding] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def annotate(self, result: ScanResult) -> None:
        """Add the fetch findings and facts (resolved commits) to a scan result."""
        result.findings.extend(self.findings)
        if self.metadata:
            result.metadata.setdefault("fetch", self.metadata if len(self.metadata) > 1
                                       else next(iter(self.metadata.values())))
        result.sort()


@contextmanager
def materialize(targets: Sequence[str], *, quiet: bool = False,
                notices: TextIO | None = None) -> Iterator[RemoteTargets]:
    """Yield :class:`RemoteTargets`; the temporary copies are removed on exit.

    HTTP settings come from the environment (``MLSCAN_HTTP_TIMEOUT``, ``MLSCAN_HTTP_RETRIES``,
    ``MLSCAN_CA_BUNDLE``, ``HF_ENDPOINT``, ``HF_TOKEN``); plain http is refused (use
    ``mlscan fetch --allow-insecure-http`` and scan the local copy). Raises
    :class:`FetchError` for anything that stops a file from being obtained or verified.
    """
    if not any(is_remote(t) for t in targets):
        yield RemoteTargets(tuple(targets))
        return
    from scanner.sources.fetch import FetchRequest, staged_fetch
    from scanner.sources.http import HttpOptions
    from scanner.sources.progress import byte_progress
    from scanner.sources.quarantine import Quarantine

    stream = notices if notices is not None else sys.stderr
    http = HttpOptions.from_env()
    out = RemoteTargets(())
    paths: list[str] = []
    with ExitStack() as stack:
        for target in targets:
            if not is_remote(target):
                paths.append(target)
                continue
            staged = stack.enter_context(staged_fetch(
                FetchRequest(target, http=http), Quarantine.temporary, None,
                progress=byte_progress(quiet)))
            problems = staged.integrity_problems()
            if problems:
                first = problems[0]
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise FetchError(f"{target}: {first.location.path}: {first.title}: {first.evidence}"
                                 f"{more}; not scanned")
            fetched = staged.info
            out.metadata[target] = fetched
            out.findings.extend(f for f in staged.result.findings if f.rule_id.startswith("MLS-FET-"))
            if fetched.get("commit") and not quiet:
                stream.write(f"mlscan: {target} is commit {fetched['commit']}; pin it as "
                             f"{fetched['pinned']}\n")
            paths.append(str(staged.quarantine.root))
        out.paths = tuple(paths)
        yield out
