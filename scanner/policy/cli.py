"""The policy stage as ``mlscan scan`` uses it: policy problems become usage errors (exit 2)
and notices go to stderr. Kept here so the scan command needs only a few lines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from scanner import __version__
from scanner.core.result import ScanResult
from scanner.core.rules import RuleCatalogue, load_catalogue
from scanner.policy.apply import Policy, PolicyInputs, PolicyOutcome
from scanner.policy.config import PolicyError


def load_policy(inputs: PolicyInputs, rule_dirs: Sequence[Path] = ()) -> Policy:
    """Find, read and check the configuration before anything is scanned (a typo in it
    should fail fast, not after a long scan)."""
    try:
        return Policy.load(inputs, load_catalogue(tuple(rule_dirs)))
    except PolicyError as exc:
        raise click.UsageError(str(exc)) from None


def apply_policy(policy: Policy, result: ScanResult, rules: RuleCatalogue,
                 quiet: bool = False) -> PolicyOutcome:
    """Apply ``policy`` to ``result`` in place; call it after every stage that adds findings
    and before the exit code is computed."""
    try:
        outcome = policy.apply(result, rules, __version__)
    except PolicyError as exc:
        raise click.UsageError(str(exc)) from None
    if not quiet:
        for notice in outcome.notices:
            click.echo(f"mlscan: {notice}", err=True)
    return outcome
