"""`mlplab serve [RUN_DIR]`: a web page to draw digits on and see a run's model (by default the cached
digits model, `mlplab.cli.cached_model`) read them live."""

from __future__ import annotations

import argparse

from mlplab.cli.cached_model import PRESET, RETRAIN_HELP
from mlplab.config import Bounds


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `serve` command."""
    parser = subparsers.add_parser(
        "serve",
        help="a web page: draw a digit, see the model's prediction live",
        description="Serve a page where you draw a digit (mouse, pen or touch) or upload an image and see the "
        "run's best model classify it as you draw, with the 28x28 it saw; and a JSON API "
        "(POST /api/predict, GET /api/model, GET /health). With no RUN_DIR it serves the "
        f"{PRESET} preset's model: trained once on first use (seconds to a minute, offline) and kept in "
        "$MLPLAB_CACHE_DIR or ~/.cache/mlplab under models/; later calls load it. Needs the serve "
        'extra: pip install "mlplab[serve]".',
    )
    parser.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        nargs="?",
        help=f"a run directory written by `mlplab train` (default: the cached {PRESET} model)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: your network)",
    )
    port = parser.add_argument(
        "--port", type=_port, default=8000, help="port, 0-65535 (default: 8000; 0 picks a free one)"
    )
    port.bounds = PORTS
    parser.add_argument(
        "--allow-host",
        metavar="NAME",
        type=_host,
        action="append",
        default=[],
        help="another host name the server answers to, e.g. mybox.local (repeat for several; "
        "'*' for any). By default it answers only to localhost and IP addresses (loopback "
        "ones when --host is), so no web page can reach it by a rebound DNS name",
    )
    parser.add_argument("--retrain", action="store_true", help=RETRAIN_HELP + "; only without RUN_DIR")
    parser.set_defaults(func=execute)


PORTS = Bounds(0, 65535)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not PORTS.admits(port):
        raise argparse.ArgumentTypeError(f"a port is a number from 0 to 65535; got {text!r}")
    return port


def _host(text: str) -> str:
    name = text.strip().lower()
    if name != "*" and (not name or any(mark in name for mark in ":/[]@ ")):
        raise argparse.ArgumentTypeError(f"a host name without scheme or port, e.g. mybox.local; got {text!r}")
    return name


def execute(args: argparse.Namespace) -> int:
    """Load the run, bind the port, print the URL, serve until Ctrl+C."""
    from mlplab.cli.cached_model import cached_run, check_retrain
    from mlplab.serve import create_app, listen, require_serve_extra, run_server, url

    require_serve_extra()  # before the model loads: the missing extra is the first thing to fix
    check_retrain(args.run_dir, args.retrain)
    # A bad RUN_DIR fails here, before any port is taken.
    run = args.run_dir if args.run_dir is not None else cached_run(args.retrain)
    app = create_app(run, host=args.host, allow_hosts=args.allow_host)
    info, hosts = app.state.served.info, app.state.hosts
    sock = listen(args.host, args.port)
    accuracy = "" if info["test_accuracy"] is None else f", test accuracy {100 * info['test_accuracy']:.2f}%"
    print(
        f"mlplab serve: {url(sock)} ({info['dataset']}, {info['architecture']}{accuracy}); press Ctrl+C to stop",
        flush=True,
    )
    if not hosts.loopback_only:  # reachable from the network: say by which names, and how to add one
        print(f"mlplab serve: answering to {hosts.describe()}; another name needs --allow-host NAME", flush=True)
    # One image a request: far too little work to split, so each request computes on the thread that
    # serves it (four at once), and no OpenMP team competes with them (mlplab.threads).
    from mlplab.threads import ThreadGovernor, model_work

    with ThreadGovernor(work=model_work(app.state.served.model, 1), recheck=False) as governor:
        print(f"mlplab serve: threads {governor.describe()}", flush=True)
        run_server(app, sock)
    print("mlplab serve: stopped", flush=True)
    return 0
