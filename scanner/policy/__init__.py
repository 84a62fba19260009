"""Scan policy: configuration, rule selection, severity overrides, ignores, suppressions,
baselines and finding fingerprints, applied to a finished scan before the verdict.

The engine reports everything it sees; policy decides what a team has chosen to accept. Keeping
the two apart means a report can always say which configuration produced it, and the analyzers
never need to know about it.
"""

from scanner.policy.apply import Policy, PolicyInputs, PolicyOutcome
from scanner.policy.config import PolicyError

__all__ = ["Policy", "PolicyError", "PolicyInputs", "PolicyOutcome"]
