"""`mlplab studio`: a live training page for a class: set up a run, watch it learn, steer it, look inside."""

from __future__ import annotations

import argparse

from mlplab.cli.server_flags import add_server_flags


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `studio` command."""
    parser = subparsers.add_parser(
        "studio",
        help="a live training page: start a run, watch it learn, steer it, draw digits for it",
        description="Serve a page where you set up and start a run (or a preset), watch its curves, first-layer "
        "weights and confusion matrix as it trains, pause, resume or stop it, change its learning rate "
        "or momentum while it runs (recorded in its history), and draw a digit to see what the model "
        "makes of it, layer by layer. Every run is an ordinary run directory under --runs: `mlplab "
        "train --resume`, `mlplab report` and mlplab.open_run read it. Several browsers may watch one "
        'run; one run trains at a time. Needs the serve extra: pip install "mlplab[serve]".',
    )
    parser.add_argument(
        "--runs", metavar="DIR", default="runs", help="folder the runs are made in, one folder each (default: runs)"
    )
    add_server_flags(
        parser,
        network="your classroom network, where anyone may watch and only the holder of the token may "
        "start, steer or stop a run",
        example="classroom.local",
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help="the secret starting, steering and stopping need (at least 8 characters); default: a "
        "new random one whenever --host is not loopback, none on this machine only",
    )
    parser.set_defaults(func=execute)


def execute(args: argparse.Namespace) -> int:
    """Bind the port, print the page's address (with the token), serve until Ctrl+C."""
    from mlplab.serve import listen, require_serve_extra, run_server, url
    from mlplab.studio.app import create_studio_app

    require_serve_extra("mlplab studio")  # before the port is taken: the missing extra is the first thing to fix

    token = studio_token(args.host, args.token)
    app = create_studio_app(args.runs, host=args.host, token=token, allow_hosts=args.allow_host)
    sock = listen(args.host, args.port)
    address = url(sock)
    page = f"{address}?token={token}" if token else address
    print(f"mlplab studio: {page} (runs in {args.runs}/); press Ctrl+C to stop", flush=True)
    if token:
        watchers = address
        if sock.getsockname()[0] in ("0.0.0.0", "::"):  # the whole network: name this machine as students reach it
            lan = lan_address()
            watchers = f"http://{lan}:{sock.getsockname()[1]}/" if lan else address
        print(
            f"mlplab studio: watchers open {watchers}; starting, steering and stopping need the token above", flush=True
        )
    if not app.state.hosts.loopback_only:
        print(
            f"mlplab studio: answering to {app.state.hosts.describe()}; another name needs --allow-host NAME",
            flush=True,
        )
    run_server(app, sock, on_exit=app.state.studio.close_streams)  # open pages must not hold up Ctrl+C
    print("mlplab studio: stopped", flush=True)
    return 0


def studio_token(host: str, token: str | None) -> str | None:
    """The token a studio listening on ``host`` needs: ``token`` when given, else a new one unless the
    studio is reachable from this machine only (then none: whoever can open it is at the keyboard)."""
    from mlplab.serve.guard import HostPolicy
    from mlplab.studio.app import new_token

    if token is not None:
        return token
    return None if HostPolicy.for_bind(host).loopback_only else new_token()


def lan_address() -> str | None:
    """This machine's address on its network (the one its default route leaves by), or None.
    A UDP socket's connect sends nothing: it only picks the route."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1, never routed anywhere real
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address
