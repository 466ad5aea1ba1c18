"""``valueloop stream``: the Redis Streams consumer of a use case's model."""

from __future__ import annotations

import typer

from valueloop.cli._common import JsonOption, actor, console, parse_options, show


def stream(
    ctx: typer.Context,
    usecase: str = typer.Argument(..., help="The use case whose model scores the events."),
    model: str = typer.Option("champion", "--model", "-m", help="An alias (champion, challenger) or a version."),
    redis_url: str = typer.Option(
        None, "--redis-url",
        help="Default: the redis_url setting; when that is not set, a private server of the home (<home>/redis)."),
    group: str = typer.Option("valueloop", "--group", help="The consumer group."),
    consumer: str = typer.Option(None, "--consumer", help="This consumer's name (default: <host>-<pid>)."),
    batch_size: int = typer.Option(1000, "--batch-size", help="Most events read and scored at once."),
    block_ms: int = typer.Option(200, "--block-ms", help="Longest wait for new events, in ms."),
    claim_idle_ms: int = typer.Option(
        10_000, "--claim-idle-ms", help="Claim events another consumer left pending this long."
    ),
    max_deliveries: int = typer.Option(5, "--max-deliveries", help="Deliveries before an event is dead-lettered."),
    metrics_port: int = typer.Option(None, "--metrics-port", help="Serve /metrics and /healthz on this port."),
    connect_timeout: float = typer.Option(30.0, "--connect-timeout", help="Seconds to retry an unreachable Redis."),
    idle_exit: float = typer.Option(None, "--idle-exit", help="Stop after this many seconds without events."),
    threads: int = typer.Option(1, "--threads", help="Threads the model may use; scale out with more consumers."),
    as_json: bool = JsonOption,
) -> None:
    """Score the events of valueloop:USECASE:in into valueloop:USECASE:out, until SIGTERM.

    Events are entries with a field 'data' holding a JSON object of the model's features.
    Malformed events and events that fail repeatedly go to valueloop:USECASE:dead with a reason.
    SIGTERM (or Ctrl-C) finishes the batch in hand and exits 0.
    """
    import signal
    import threading
    from contextlib import ExitStack

    from valueloop.config import load_settings
    from valueloop.deploy.stream import StreamOptions, consume

    settings = load_settings()
    with ExitStack() as embedded:
        if redis_url is None and settings.sources["redis_url"] == "default":
            from valueloop.deploy.redis_server import home_redis_server

            redis_url = embedded.enter_context(home_redis_server(settings.home))
            typer.echo(f"no redis_url is configured: streaming through the home's private server at {redis_url} "
                       f"(written to {settings.home / 'redis' / 'url'} for producers)", err=True)
        options = parse_options(StreamOptions, model=model, redis_url=redis_url, group=group, consumer=consumer,
                                batch_size=batch_size, block_ms=block_ms, claim_idle_ms=claim_idle_ms,
                                max_deliveries=max_deliveries, metrics_port=metrics_port,
                                connect_timeout=connect_timeout, idle_exit=idle_exit, threads=threads)
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        summary = consume(settings, actor(ctx), usecase, options, stop)

    def render() -> None:
        console().print(
            f"consumer [bold]{summary.consumer}[/bold] of {usecase} v{summary.model_version}: "
            f"{summary.predicted:,} predicted, {summary.dead_lettered:,} dead-lettered, "
            f"{summary.failed:,} failed attempts in {summary.batches:,} batches over {summary.seconds:.1f} s")

    show(summary, as_json, render)
