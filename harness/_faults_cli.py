"""``harness toxiproxy``: the embedded Toxiproxy-compatible server, with the real server's flags."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address of the HTTP API.")
@click.option(
    "--port",
    default=8474,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="API port; 0 picks a free one.",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="JSON file of proxies to create at start (the /populate format).",
)
@click.option(
    "--seed", type=int, help="Seed for the toxics' randomness (toxicity, jitter), for repeatable runs."
)
@click.option(
    "--proxy-metrics", is_flag=True, help="Serve byte counters per proxy and direction at /metrics."
)
@click.option("--runtime-metrics", is_flag=True, help="Serve process metrics at /metrics.")
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback API host and proxy addresses.")
@click.option(
    "--port-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the bound API port here once the server accepts requests.",
)
def toxiproxy(
    host: str,
    port: int,
    config: Path | None,
    seed: int | None,
    proxy_metrics: bool,
    runtime_metrics: bool,
    allow_remote: bool,
    port_file: Path | None,
) -> None:
    """A Toxiproxy-compatible fault proxy server (the Toxiproxy 2.12 HTTP API and its seven toxics, plus
    the HTTP toxics http_error and http_latency, extensions applied per request)."""
    from harness._cli_common import build_settings, ensure_loopback
    from harness.faults import ToxiproxySettings, run_toxiproxy

    ensure_loopback(host, allow_remote=allow_remote, what="--host")
    settings = build_settings(
        ToxiproxySettings,
        host=host,
        port=port,
        config=config,
        seed=seed,
        proxy_metrics=proxy_metrics,
        runtime_metrics=runtime_metrics,
        allow_remote=allow_remote,
    )
    run_toxiproxy(
        settings, port_file=port_file, on_ready=lambda url: click.echo(f"toxiproxy listening on {url}")
    )
