"""``tds simulator``: a local Zoho stand-in, with its volumes, limits and faults from the command line."""

from __future__ import annotations

from tds.preflight import Failure


def add_command(sub) -> None:
    p = sub.add_parser("simulator", help="a local Zoho stand-in (OAuth, Books v3, Inventory v1, webhooks)")
    p.set_defaults(func=cmd_simulator)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--seed", type=int, default=1, help="same seed, same objects")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies the default volumes (1,312 items, ...)")
    p.add_argument("--count", action="append", default=[], metavar="ENTITY=N", help="volume of one entity")
    p.add_argument("--rate-limit", type=int, default=100, help="requests/min per app per organization; 0 = off")
    p.add_argument("--daily-limit", type=int, default=0,
                   help="requests per day per organization, all apps together (429 code 45); 0 = off")
    p.add_argument("--max-concurrency", type=int, default=0, metavar="N",
                   help="requests of the organization in flight at once, all apps together; 0 = off")
    p.add_argument("--refresh-limit", type=int, default=10, help="access tokens per refresh token per 10 min")
    p.add_argument("--token-ttl", type=int, default=3600, metavar="SECONDS", help="access token lifetime")
    p.add_argument("--error-rate", type=float, default=0.0, help="fraction of API calls answered 500/503")
    p.add_argument("--latency-ms", type=int, default=0, help="added to every API answer")
    p.add_argument("--organization-id", default="600000001")
    p.add_argument("--client-id", default="sim-client")
    p.add_argument("--client-secret", default="sim-secret")
    p.add_argument("--refresh-token", default="sim-refresh")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")


def cmd_simulator(args) -> int:
    from tds_daemon.simulator import server
    from tds_daemon.simulator.faults import Faults
    from tds_daemon.simulator.settings import Settings, parse_counts
    from tds_daemon.simulator.sim import Simulator

    try:
        settings = Settings(seed=args.seed, scale=args.scale, counts=parse_counts(args.count),
                            rate_limit=args.rate_limit, daily_limit=args.daily_limit,
                            max_concurrency=args.max_concurrency, refresh_limit=args.refresh_limit,
                            organization_id=args.organization_id, client_id=args.client_id,
                            client_secret=args.client_secret, refresh_token=args.refresh_token, verbose=args.verbose)
        faults = Faults(seed=args.seed, error_rate=args.error_rate, latency_ms=args.latency_ms,
                        token_ttl_s=args.token_ttl)
    except ValueError as e:
        raise Failure(f"simulator: {e}") from None
    try:
        return server.serve(Simulator(settings, faults), args.host, args.port)
    except OSError as e:
        raise Failure(f"simulator: cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
