"""`mlplab studio`: a live training page for a class: set up a run, watch it learn, steer it, look inside."""

from __future__ import annotations

import argparse

from mlplab.cli.serve_cmd import PORTS, _host, _port


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `studio` command."""
    parser = subparsers.add_parser(
        "studio", help="a live training page: start a run, watch it learn, steer it, draw digits for it",
        description="Serve a page where you set up and start a run (or a preset), watch its curves, first-layer "
                    "weights and confusion matrix as it trains, pause, resume or stop it, change its learning rate "
                    "or momentum while it runs (recorded in its history), and draw a digit to see what the model "
                    "makes of it, layer by layer. Every run is an ordinary run directory under --runs: `mlplab "
                    "train --resume`, `mlplab report` and mlplab.open_run read it. Several browsers may watch one "
                    "run; one run trains at a time. Needs the serve extra: pip install \"mlplab[serve]\".")
    parser.add_argument("--runs", metavar="DIR", default="runs",
                        help="folder the runs are made in, one folder each (default: runs)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: your classroom "
                             "network, where anyone may watch and only the holder of the token may start, steer "
                             "or stop a run)")
    port = parser.add_argument("--port", type=_port, default=8000,
                               help="port, 0-65535 (default: 8000; 0 picks a free one)")
    port.bounds = PORTS
    parser.add_argument("--token", metavar="TOKEN",
                        help="the secret starting, steering and stopping need (at least 8 characters); default: a "
                             "new random one whenever --host is not loopback, none on this machine only")
    parser.add_argument("--allow-host", metavar="NAME", type=_host, action="append", default=[],
                        help="another host name the server answers to, e.g. classroom.local (repeat for several; "
                             "'*' for any)")
    parser.set_defaults(func=execute)


def execute(args: argparse.Namespace) -> int:
    """Bind the port, print the page's address (with the token), serve until Ctrl+C."""
    from mlplab.serve import listen, require_serve_extra, run_server, url
    from mlplab.studio.app import create_studio_app, new_token

    from mlplab.serve.guard import HostPolicy

    require_serve_extra()  # before the port is taken: the missing extra is the first thing to fix

    loopback = HostPolicy.for_bind(args.host).loopback_only
    token = args.token if args.token is not None else None if loopback else new_token()
    app = create_studio_app(args.runs, host=args.host, token=token, allow_hosts=args.allow_host)
    sock = listen(args.host, args.port)
    address = url(sock)
    page = f"{address}?token={token}" if token else address
    print(f"mlplab studio: {page} (runs in {args.runs}/); press Ctrl+C to stop", flush=True)
    if token:
        print(f"mlplab studio: watchers open {address}; starting, steering and stopping need the token above",
              flush=True)
    if not app.state.hosts.loopback_only:
        print(f"mlplab studio: answering to {app.state.hosts.describe()}; another name needs --allow-host NAME",
              flush=True)
    run_server(app, sock, on_exit=app.state.studio.close_streams)  # open pages must not hold up Ctrl+C
    print("mlplab studio: stopped", flush=True)
    return 0
