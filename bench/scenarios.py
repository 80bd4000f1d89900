"""What bench/compare.py runs: the scenarios as lists of cases, and the floors and targets they are judged by.

Pure (no I/O): compare.py turns `--scenario` into groups here, runs every case of a group in interleaved
rounds, then hands the median rows back to `floor_lines` and `target_lines` to print.

A group is one table: {'key', 'title', 'cases', 'note'}; a case is one server under one load (see case()).
Every run also gets a `floors` group (nginx `return 200`, no app) unless --no-floors, and the Python floor
of each app (bench/floor.py) is measured once per round.
"""

import nginx_conf

ALL_SERVERS = ['liege', 'uwsgi-http11', 'uwsgi-http', 'gunicorn', 'granian']
# Named with --servers only: liege's extension-module build (`pip install liege`), run by the `liege` command of
# the venv that --liege-pip names, so the binary and the wheel are measured side by side (issue 13).
EXTRA_SERVERS = ['liege-pip']
IO_SERVERS = ['liege', 'liege-pip', 'uwsgi-http11', 'uwsgi-http', 'granian']
OVERLOAD_SERVERS = ['liege', 'uwsgi-http', 'uwsgi-http11']
SCENARIOS = ['main', 'io', 'newconn', 'nginx', 'keepalive-wide', 'overload', 'floors']
CLOSE = 'Connection: close'
FRONT_LABEL = {'uwsgi': 'uwsgi_pass', 'uwsgi-ka': 'uwsgi_pass+keepalive', 'http-ka': 'proxy_pass+keepalive'}

# Issue 10's targets.
TARGET_SEED_VS_PYTHON = 1.15   # liege seed CPU-µs/req ≤ 1.15 × the app alone in a Python loop
TARGET_HELLO_VS_NGINX = 1.5    # liege hello CPU-µs/req ≤ 1.5 × nginx `return 200`
TARGET_NEWCONN_VS_UWSGI = 1.5  # new-connection req/s ≥ 1.5 × uWSGI's, with p99 ≤ uWSGI's


def case(app, server, label=None, *, threads=None, processes=None, conns=None, wrk_threads=None, close=False,
         front=None, backlog=None, ref='liege', probe=False):
    """One measured row. close: wrk sends `Connection: close` (a new TCP connection per request).
    front: an nginx_conf front (nginx in front, the server on a unix socket). ref: the row liege÷it uses.
    probe: a newcomer connects every 0.25 s during the run (compare.NewcomerProbe)."""
    return {'app': app, 'server': server, 'label': label or server, 'threads': threads, 'processes': processes,
            'conns': conns, 'wrk_threads': wrk_threads, 'headers': [CLOSE] if close else [], 'front': front,
            'backlog': backlog, 'ref': ref, 'close': close, 'probe': probe}


def parse_scenarios(text):
    names = [s.strip() for s in text.split(',') if s.strip()]
    if 'all' in names:
        return list(SCENARIOS)
    bad = [n for n in names if n not in SCENARIOS]
    if bad:
        raise ValueError(f'unknown scenarios {bad} (choose from {", ".join(SCENARIOS + ["all"])})')
    return names


def build_groups(args, scenarios, servers, apps):
    """[group] for these scenarios, in the order they run (floors first, so a cut-short run still has them)."""
    P, C = args.processes, args.connections
    groups = []
    uw_selected = any(s.startswith('uwsgi') for s in servers)
    if 'floors' in scenarios or not args.no_floors:
        with_liege = 'floors' in scenarios and 'liege' in servers
        # With liege rows, the nginx rows' liege÷it columns are liege hello ÷ the floor (same connection mode).
        cases = [case(None, 'nginx', 'nginx', ref='liege hello' if with_liege else None),
                 case(None, 'nginx', 'nginx close', close=True, ref='liege hello close' if with_liege else None)]
        if with_liege:
            cases += [case('hello', 'liege', 'liege hello', ref=None),
                      case('hello', 'liege', 'liege hello close', close=True, ref=None),
                      case('seed', 'liege', 'liege seed', ref=None)]
        groups.append({'key': 'floors', 'title': f'floors: nginx `return 200` ({args.nginx_workers} worker(s), no app, '
                                                 f'13-byte body) and liege, wrk -t{args.wrk_threads} -c{C} '
                                                 f'-d{args.duration}s, keep-alive and Connection: close',
                       'cases': cases, 'note': None})
    if 'main' in scenarios:
        for app in apps:
            groups.append({'key': app, 'title': f'{app} app — {P} processes, wrk -t{args.wrk_threads} -c{C} '
                                                f'(uwsgi-http11: -c{args.http11_connections or P}) -d{args.duration}s',
                           'cases': [case(app, s) for s in servers],
                           'note': ('target (issue 2): liege req/s ≥ 1.5× the best of the others; PSS/worker ≤ '
                                    "uWSGI's") if app == 'hello' else
                                   'target (issue 2): liege req/s ≥ 10× the best of the others'})
    if 'io' in scenarios:
        for t in [int(x) for x in args.io_threads.split(',') if x.strip()]:
            iosrv = [s for s in servers if s in IO_SERVERS]
            groups.append({'key': f'io-{P}x{t}',
                           'title': f'io app (10 ms sleep) — {P} processes × {t} thread(s), wrk -c{args.io_connections} '
                                    f'(uwsgi-http11: -c{args.http11_connections or P * t}); '
                                    f'ceiling {P * t / 0.010:,.0f} req/s',
                           'cases': [case('io', s, threads=t) for s in iosrv],
                           'note': "target (issue 3): with threads, liege req/s ≥ uWSGI's at the same processes × threads"})
    if 'newconn' in scenarios:
        fronted = (['liege'] if 'liege' in servers else []) + (['uwsgi'] if uw_selected else [])
        for app in apps:
            groups.append({'key': f'newconn-nginx-{app}',
                           'title': f'new connections behind nginx: {app} app — wrk -t{args.wrk_threads} -c{C} '
                                    f'(keep-alive) → nginx ({args.nginx_workers} worker) → uwsgi_pass {args.nginx_upstream} '
                                    f'(one new upstream connection per request) → {P} processes',
                           'cases': [case(app, s, front='uwsgi', conns=C) for s in fronted],
                           'note': 'server CPU-µs/req is the app server\'s tree only; nginx\'s own is its column'})
        for app in apps:
            cases = [case(app, s, conns=C, close=True) for s in servers]
            note = None
            if app == 'hello' and 'liege' in servers:
                cases += [case(app, 'liege', f'liege {n}w', processes=n, conns=C, close=True) for n in (1, 2) if n != P]
                note = ('liege 1/2/4 workers: the issue measured 26,370 / 1,240 / 1,900 req/s (accept pacing); '
                        'the liege ÷ it columns of the "liege Nw" rows are liege (P workers) ÷ liege (N workers)')
            groups.append({'key': f'newconn-{app}',
                           'title': f'new connections: {app} app — {P} processes, wrk -t{args.wrk_threads} -c{C} '
                                    f"-H '{CLOSE}' -d{args.duration}s (every server, uwsgi-http11 included, at c{C})",
                           'cases': cases, 'note': note})
        groups.append({'key': 'newconn-single',
                       'title': f"new connections, one client: hello app — {P} processes, wrk -t1 -c1 -H '{CLOSE}' "
                                f'-d{args.duration}s',
                       'cases': [case('hello', s, conns=1, wrk_threads=1, close=True) for s in servers], 'note': None})
    if 'nginx' in scenarios:
        cases = []
        for front in nginx_conf.FRONTS:
            peer = 'uwsgi-http11' if front == 'http-ka' else 'uwsgi'
            ref = f'liege [{FRONT_LABEL[front]}]'
            if 'liege' in servers:
                cases.append(case('hello', 'liege', ref, front=front, conns=C, ref=ref))
            if uw_selected:
                cases.append(case('hello', peer, f'{peer} [{FRONT_LABEL[front]}]', front=front, conns=C, ref=ref))
        groups.append({'key': 'nginx-upstream',
                       'title': f'nginx upstream keepalive: hello app — wrk -t{args.wrk_threads} -c{C} (keep-alive) → '
                                f'nginx ({args.nginx_workers} worker) → {args.nginx_upstream} socket → {P} processes; '
                                f'keepalive {args.nginx_keepalive}',
                       'cases': cases,
                       'note': ('uwsgi_pass+keepalive: nginx\'s uwsgi module never reuses an upstream connection (it '
                                'sets no keepalive flag; there is no uwsgi_keep_conn), so this row is uwsgi_pass again, '
                                'whatever the server does. proxy_pass+keepalive (HTTP/1.1, Connection "") is how nginx '
                                'keeps upstream connections. liege ÷ it compares within the same front.')})
    if 'keepalive-wide' in scenarios:
        for c in (100, 1000):
            groups.append({'key': f'keepalive-c{c}',
                           'title': f'keep-alive, wide: hello app — {P} processes, wrk -t{args.wrk_threads} -c{c} '
                                    f'-d{args.duration}s, listen backlog {args.backlog} for every server',
                           'cases': [case('hello', s, conns=c, backlog=args.backlog) for s in servers],
                           'note': ('uwsgi-http11 pins a kept-alive connection to a worker: all but '
                                    f'{P} clients wait (their requests show as timeouts); gunicorn (sync) closes '
                                    'after every response')})
    if 'overload' in scenarios:
        osrv = [s for s in servers if s in OVERLOAD_SERVERS]
        for c in (64, 256):
            groups.append({'key': f'overload-c{c}',
                           'title': f'overload fairness: hello app — {P} processes × 1 thread, wrk -t{args.wrk_threads} '
                                    f'-c{c} (keep-alive) -d{args.duration}s --timeout {args.wrk_timeout}s, backlog '
                                    f'{args.backlog}',
                           'cases': [case('hello', s, conns=c, backlog=args.backlog, probe=True) for s in osrv],
                           'note': ('fair = every client served: compare p99, max and timeouts (requests that waited '
                                    f'more than {args.wrk_timeout} s are not in p99); newcomer = a fresh client every '
                                    f'0.25 s during the run (GET, then close): its latency, and failed/tried '
                                    f'(no answer within {args.wrk_timeout} s)')})
    return groups


def estimate_seconds(args, groups):
    """Rough wall time of a run: per case start + warm-up + measurement + stop (~3 s of overhead, measured
    on the 2-core box), plus ~5 s of Python floors per round."""
    n = sum(len(g['cases']) for g in groups)
    return args.rounds * (n * (args.warmup + args.duration + 3) + 5)


# ----------------------------------------------------------------------------------- floors, targets

def nginx_floors(tables):
    """{'ka': row, 'close': row} of the floors table (nginx `return 200`)."""
    out = {}
    for t in tables:
        if t['key'] != 'floors':
            continue
        for r in t['rows']:
            if r.get('server') == 'nginx' and r.get('cpu_us_per_req'):
                out['ka'] = r
            elif r.get('server') == 'nginx close' and r.get('cpu_us_per_req'):
                out['close'] = r
    return out


def _is_close(row):
    return 'Connection: close' in (row.get('wrk_headers') or [])


def _kept_alive(row):
    """A Connection: close row whose server kept the connections open anyway (uWSGI --http11-socket does)."""
    return _is_close(row) and row.get('conns_per_req') is not None and row['conns_per_req'] < 0.9


def _mark(ok):
    return 'MET' if ok else 'MISSED'


def floor_lines(tbl, nfloors, pyfloors):
    """Lines under a table: each liege row's CPU-µs/req ÷ the floors that apply to it."""
    lines = []
    for r in tbl['rows']:
        if r.get('status') != 'ok' or not r.get('cpu_us_per_req') or r.get('server_kind') != 'liege':
            continue
        parts = []
        cpu = r['cpu_us_per_req']
        if r.get('app') == 'hello':
            fl = nfloors.get('close' if _is_close(r) else 'ka')
            if fl:
                parts.append(f'{cpu / fl["cpu_us_per_req"]:.2f}× nginx return-200 '
                             f'{"close" if _is_close(r) else "keep-alive"} floor ({fl["cpu_us_per_req"]:.1f} µs)')
        py = pyfloors.get(r.get('app'))
        if py:
            parts.append(f'{cpu / py["us_per_call"]:.2f}× the app alone in Python ({py["us_per_call"]:.1f} µs)')
        if parts:
            lines.append(f'  {r["server"]}: {cpu:.1f} CPU-µs/req = ' + '; '.join(parts))
    return lines


def target_lines(tbl, nfloors, pyfloors):
    """Issue 10's targets that this table can judge, each MET or MISSED."""
    lines = []
    rows = [r for r in tbl['rows'] if r.get('status') == 'ok' and r.get('rps')]
    for r in rows:
        if _kept_alive(r):
            lines.append(f'  note: {r["server"]} kept its connections open ({r["conns_per_req"]:.2f} new TCP connections '
                         'per request): it ignores the client\'s Connection: close, so its row measures keep-alive '
                         '(left out of the new-connection target)')
    for r in rows:
        if r.get('server_kind') != 'liege' or r.get('front') or not r.get('cpu_us_per_req'):
            continue
        if r.get('workers_variant'):
            continue  # the 1/2-worker rows are not the configuration the targets are about
        cpu = r['cpu_us_per_req']
        fl = nfloors.get('close' if _is_close(r) else 'ka')
        if r.get('app') == 'hello' and fl and not _is_close(r) and r.get('connections') == fl.get('connections'):
            ratio = cpu / fl['cpu_us_per_req']
            lines.append(f'  target hello ≤ {TARGET_HELLO_VS_NGINX}× nginx floor: {ratio:.2f}× '
                         f'({r["server"]}) {_mark(ratio <= TARGET_HELLO_VS_NGINX)}')
        py = pyfloors.get(r.get('app'))
        if r.get('app') == 'seed' and py:
            ratio = cpu / py['us_per_call']
            lines.append(f'  target seed ≤ {TARGET_SEED_VS_PYTHON}× Python floor: {ratio:.2f}× '
                         f'({r["server"]}{", Connection: close" if _is_close(r) else ""}) '
                         f'{_mark(ratio <= TARGET_SEED_VS_PYTHON)}')
    if tbl['key'].startswith('newconn'):
        liege = next((r for r in rows if r['server'] == 'liege'), None)
        for u in (r for r in rows if r.get('server_kind', '').startswith('uwsgi')):
            if not liege:
                break
            if _kept_alive(u):
                continue
            ratio = liege['rps'] / u['rps']
            p99_ok = liege.get('p99_ms') is not None and u.get('p99_ms') is not None and liege['p99_ms'] <= u['p99_ms']
            lines.append(f'  target new-connection ≥ {TARGET_NEWCONN_VS_UWSGI}× {u["server"]} req/s with p99 ≤ its: '
                         f'{ratio:.2f}×, p99 {liege.get("p99_ms") or 0:.2f} vs {u.get("p99_ms") or 0:.2f} ms '
                         f'{_mark(ratio >= TARGET_NEWCONN_VS_UWSGI and p99_ok)}')
    if tbl['key'] == 'nginx-upstream':
        by = {r['server']: r for r in rows}
        for srv, peer_http in (('liege', 'liege'), ('uwsgi', 'uwsgi-http11')):
            base = by.get(f'{srv} [{FRONT_LABEL["uwsgi"]}]')
            if not base:
                continue
            for front in ('uwsgi-ka', 'http-ka'):
                other = by.get(f'{peer_http if front == "http-ka" else srv} [{FRONT_LABEL[front]}]')
                if other and other.get('cpu_us_per_req') and base.get('cpu_us_per_req'):
                    tot_b = base['cpu_us_per_req'] + (base.get('nginx_cpu_us_per_req') or 0)
                    tot_o = other['cpu_us_per_req'] + (other.get('nginx_cpu_us_per_req') or 0)
                    lines.append(f'  {FRONT_LABEL[front]} buys {other["server"]}: req/s {other["rps"] / base["rps"]:.2f}×, '
                                 f'server CPU/req {other["cpu_us_per_req"] / base["cpu_us_per_req"]:.2f}×, '
                                 f'server+nginx CPU/req {tot_o / tot_b:.2f}× (vs {base["server"]})')
    return lines
