"""`mlplab serve [RUN_DIR]`: a web page to draw digits on and see a run's model (by default the cached
digits model, `mlplab.cli.cached_model`) read them live."""

from __future__ import annotations

import argparse

from mlplab.cli.cached_model import PRESET, RETRAIN_HELP
from mlplab.cli.server_flags import add_server_flags


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
    add_server_flags(parser, network="your network", example="mybox.local")
    parser.add_argument("--retrain", action="store_true", help=RETRAIN_HELP + "; only without RUN_DIR")
    parser.set_defaults(func=execute)


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
