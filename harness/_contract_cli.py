"""``harness contract``: verify the committed pacts against real providers, and ask can-i-deploy.

``verify`` starts the providers it needs in test mode (or uses ``--url``), prints the consumer x provider
matrix and the verdict per interaction, and records the results that ``can-i-deploy`` answers from.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from harness._cli_common import HarnessGroup, ensure_loopback
from harness.contract import (
    DEFAULT_CONTRACTS,
    DEFAULT_RESULTS,
    PROVIDERS,
    DeployBlocked,
    VerificationFailed,
    can_i_deploy,
    load_pacts,
    read_results,
    render_interactions,
    render_matrix,
    run_verification,
)
from harness.discovery import REGISTRY_TOKEN_ENV


def _urls(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    urls: dict[str, str] = {}
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{value!r} is not NAME=http://HOST:PORT")
        urls[name] = url
    return urls


contracts_option = click.option(
    "--contracts",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_CONTRACTS,
    show_default=True,
    help="Folder of committed pact files.",
)
results_option = click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_RESULTS,
    show_default=True,
    help="Verification results file (written by verify, read by can-i-deploy).",
)


@click.group(cls=HarnessGroup)
def contract() -> None:
    """Consumer-driven contracts: verify the committed pacts, and can-i-deploy from the results."""


@contract.command()
@click.option(
    "--provider",
    "providers",
    multiple=True,
    type=click.Choice(PROVIDERS),
    help="Verify only the pacts of this provider (repeatable; default: every provider).",
)
@click.option(
    "--stack-workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the started providers keep data and logs (default: a temporary folder).",
)
@click.option(
    "--url",
    "urls",
    multiple=True,
    callback=_urls,
    metavar="NAME=URL",
    help="Verify provider NAME at URL instead of starting it (users/notifications need --test-mode).",
)
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --url (or TOXIPROXY_URL).")
@click.option("-v", "--verbose", is_flag=True, help="Also print the verifier's report of failing pacts.")
@contracts_option
@results_option
def verify(
    providers: tuple[str, ...],
    stack_workdir: Path | None,
    urls: dict[str, str],
    allow_remote: bool,
    verbose: bool,
    contracts: Path,
    results: Path,
) -> None:
    """Verify the committed pacts against their providers and print the consumer x provider matrix.

    Toxiproxy is verified at ``TOXIPROXY_URL`` when it is set (like the stack uses it), else an embedded
    server is started. A registry given with --url and a write token needs it in HARNESS_REGISTRY_TOKEN.
    Verification also sends provider-state changes, so a URL off this machine needs ``--allow-remote``.
    """
    for name, url in urls.items():
        ensure_loopback(url, allow_remote=allow_remote, what=f"--url {name}")
    if "toxiproxy" not in urls and os.environ.get("TOXIPROXY_URL"):
        urls = {**urls, "toxiproxy": os.environ["TOXIPROXY_URL"]}
        ensure_loopback(urls["toxiproxy"], allow_remote=allow_remote, what="TOXIPROXY_URL")
    run = run_verification(
        contracts,
        results,
        providers=providers,
        urls=urls,
        workdir=stack_workdir,
        progress=lambda line: click.echo(line, err=True),
        registry_token=os.environ.get(REGISTRY_TOKEN_ENV) or None,
    )
    click.echo("\n" + render_matrix(run.pacts, run.results))
    click.echo("\n" + render_interactions(run.pacts, run.results))
    if verbose:
        for result in run.results:
            if not result.passed:
                click.echo(f"\nverifier report, {result.pair}:\n{result.output}")
    click.echo(f"\nresults recorded in {run.recorded_at}")
    if not run.passed:
        raise VerificationFailed(
            f"{len(run.failing)} pact(s) not honoured: {', '.join(run.failing)}", failing=run.failing
        )


@contract.command("can-i-deploy")
@click.argument("service")
@contracts_option
@results_option
def can_i_deploy_command(service: str, contracts: Path, results: Path) -> None:
    """Exit 0 when every pact SERVICE takes part in passed verification; 1 when not; 2 when no pact names
    SERVICE; 3 without recorded results."""
    pacts = load_pacts(contracts)
    can_i_deploy(service, pacts, [])  # an unknown service is a usage error, whether or not results exist
    record = read_results(results)
    answer = can_i_deploy(service, pacts, record.results)
    for line in answer.verified:
        click.echo(f"  ok       {line}")
    for line in answer.blockers:
        click.echo(f"  blocked  {line}")
    if not answer.deployable:
        raise DeployBlocked(
            f"{service} cannot be deployed: {len(answer.blockers)} pact(s) failing or unverified",
            service=service,
            blockers=answer.blockers,
        )
    click.echo(f"yes: {service} can be deployed ({len(answer.verified)} pact(s) verified)")
