"""``mlscan rules``: the rule catalogue, so every id in a report can be looked up."""

from __future__ import annotations

import json
import sys

import click

from scanner.core.rules import Rule, load_catalogue


def _rule_dict(rule: Rule) -> dict[str, object]:
    return {
        "id": rule.id,
        "title": rule.title,
        "severity": rule.severity.label,
        "failure_mode": int(rule.failure_mode),
        "failure_mode_name": rule.failure_mode.label,
        "cia": sorted(rule.cia),
        "description": rule.description,
        "remediation": rule.remediation,
        "references": list(rule.references),
    }


@click.command()
@click.argument("rule_id", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def rules(rule_id: str | None, fmt: str) -> None:
    """List every rule (id, severity, failure mode, title), or explain one RULE_ID in full.

    \b
    Examples:
      mlscan rules
      mlscan rules MLS-PKL-001
      mlscan rules --format json
    """
    catalogue = load_catalogue()
    if rule_id is not None:
        key = rule_id.upper()
        if key not in catalogue:
            click.echo(f"mlscan: no rule {rule_id!r}; run 'mlscan rules' for the list.", err=True)
            sys.exit(2)
        selected = [catalogue[key]]
    else:
        selected = [catalogue[k] for k in catalogue]
    if fmt == "json":
        click.echo(json.dumps([_rule_dict(r) for r in selected], indent=2))
        return
    if rule_id is not None:
        rule = selected[0]
        click.echo(f"{rule.id}  {rule.title}")
        click.echo(f"severity:     {rule.severity.label}")
        click.echo(f"failure mode: {rule.failure_mode.label}")
        click.echo(f"impact:       {', '.join(sorted(rule.cia))}")
        click.echo(f"\n{rule.description}\n\nRemediation: {rule.remediation}")
        if rule.references:
            click.echo("References:   " + ", ".join(rule.references))
        return
    for rule in selected:
        click.echo(f"{rule.id}  {rule.severity.label:<8}  #{int(rule.failure_mode):<2}  {rule.title}")
        if rule.references:
            click.echo(f"{'':14}refs: {', '.join(rule.references)}")
