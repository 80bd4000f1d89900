"""Checks of the bench harness itself (not of any server's speed): stdlib unittest, a few seconds.

  python3 -m unittest discover -s bench -p 'test_bench.py'

- every nginx configuration compare.py can write passes `nginx -t` (skipped without nginx);
- every scenario builds, with unique row labels per table and the rows the issue asks for;
- the target and floor lines judge MET/MISSED as documented, and leave kept-alive rows out;
- wrk's output is parsed (p50, p99, max, socket errors);
- bench/floor.py measures the hello app (body and a positive per-call time).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # noqa: E402
import floor  # noqa: E402
import nginx_conf  # noqa: E402
import scenarios  # noqa: E402

WRK_SAMPLE = """Running 2s test @ http://127.0.0.1:1234/
  2 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   520.00us    1.20ms  21.50ms   95.00%
    Req/Sec     9.80k     1.10k   12.00k    70.00%
  Latency Distribution
     50%  300.00us
     75%  450.00us
     90%  700.00us
     99%    8.20ms
  39000 requests in 2.00s, 4.00MB read
  Socket errors: connect 0, read 12, write 0, timeout 3
  Non-2xx or 3xx responses: 2
Requests/sec:  19500.00
Transfer/sec:      2.00MB
"""


def fake_args(**kw):
    a = argparse.Namespace(processes=4, connections=10, duration=10, warmup=2, rounds=1, wrk_threads=2,
                           wrk_timeout=5, http11_connections=None, io_connections=64, io_threads='1,8',
                           backlog=1024, nginx_workers=1, nginx_keepalive=16, nginx_upstream='unix',
                           no_floors=False)
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def row(label, kind, app='hello', rps=1000.0, cpu=50.0, p99=5.0, close=False, conns=10, cpr=None, front=None):
    return {'server': label, 'server_kind': kind, 'app': app, 'status': 'ok', 'rps': rps, 'cpu_us_per_req': cpu,
            'p99_ms': p99, 'connections': conns, 'wrk_headers': ['Connection: close'] if close else [],
            'conns_per_req': cpr, 'front': front, 'workers_variant': False}


class NginxConfig(unittest.TestCase):
    def setUp(self):
        if not (shutil.which('nginx') or os.access('/usr/sbin/nginx', os.X_OK)):
            self.skipTest('nginx not installed')
        self.dir = Path(tempfile.mkdtemp(prefix='lbt-', dir='/tmp'))

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def check(self, **kw):
        argv = nginx_conf.write_config(self.dir, 18080, 1, **kw)
        p = subprocess.run(argv + ['-t'], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_floor(self):
        self.check()

    def test_fronts(self):
        for front in nginx_conf.FRONTS:
            for up in (f'unix:{self.dir}/app.sock', '127.0.0.1:18081'):
                with self.subTest(front=front, upstream=up):
                    self.check(front=front, upstream=up, keepalive=8)

    def test_unknown_front(self):
        with self.assertRaises(ValueError):
            nginx_conf.write_config(self.dir, 18080, 1, front='fastcgi', upstream='unix:/x')


class Scenarios(unittest.TestCase):
    def test_every_scenario_builds_with_unique_labels(self):
        groups = scenarios.build_groups(fake_args(), scenarios.SCENARIOS, scenarios.ALL_SERVERS, ['hello', 'seed'])
        self.assertEqual(groups[0]['key'], 'floors')
        for g in groups:
            labels = [c['label'] for c in g['cases']]
            self.assertEqual(len(labels), len(set(labels)), g['key'])
        keys = {g['key'] for g in groups}
        for k in ('newconn-nginx-hello', 'newconn-nginx-seed', 'newconn-hello', 'newconn-seed', 'newconn-single',
                  'nginx-upstream', 'keepalive-c100', 'keepalive-c1000', 'overload-c64', 'overload-c256'):
            self.assertIn(k, keys)
        by = {g['key']: g for g in groups}
        self.assertEqual([c['label'] for c in by['newconn-hello']['cases']][-2:], ['liege 1w', 'liege 2w'])
        self.assertTrue(all(c['close'] and c['conns'] == 10 for c in by['newconn-hello']['cases']))
        self.assertTrue(all(c['conns'] == 1 and c['wrk_threads'] == 1 for c in by['newconn-single']['cases']))
        self.assertEqual({c['server'] for c in by['overload-c64']['cases']}, {'liege', 'uwsgi-http', 'uwsgi-http11'})
        self.assertTrue(all(c['probe'] for c in by['overload-c256']['cases']))
        self.assertEqual({c['front'] for c in by['nginx-upstream']['cases']}, set(nginx_conf.FRONTS))

    def test_no_floors_and_parse(self):
        groups = scenarios.build_groups(fake_args(no_floors=True), ['main'], ['liege'], ['hello'])
        self.assertEqual([g['key'] for g in groups], ['hello'])
        self.assertEqual(scenarios.parse_scenarios('all'), scenarios.SCENARIOS)
        with self.assertRaises(ValueError):
            scenarios.parse_scenarios('newconn,bogus')

    def test_targets(self):
        nfloors = {'ka': row('nginx', 'nginx', app=None, cpu=20.0), 'close': row('nginx close', 'nginx', app=None,
                                                                                  cpu=40.0, close=True)}
        py = {'hello': {'us_per_call': 1.0}, 'seed': {'us_per_call': 200.0}}
        hello = {'key': 'hello', 'rows': [row('liege', 'liege', cpu=29.0)]}
        self.assertIn('MET', scenarios.target_lines(hello, nfloors, py)[0])
        hello['rows'][0]['cpu_us_per_req'] = 31.0
        self.assertIn('MISSED', scenarios.target_lines(hello, nfloors, py)[0])
        seed = {'key': 'seed', 'rows': [row('liege', 'liege', app='seed', cpu=229.0)]}
        self.assertIn('MET', scenarios.target_lines(seed, nfloors, py)[0])
        nc = {'key': 'newconn-hello', 'rows': [
            row('liege', 'liege', rps=3000, p99=4.0, close=True, cpr=1.0),
            row('uwsgi-http', 'uwsgi-http', rps=1900, p99=5.0, close=True, cpr=1.0),
            row('uwsgi-http11', 'uwsgi-http11', rps=9000, p99=1.0, close=True, cpr=0.0)]}
        lines = scenarios.target_lines(nc, nfloors, py)
        self.assertTrue(any('kept its connections open' in l and 'uwsgi-http11' in l for l in lines))
        judged = [l for l in lines if l.startswith('  target new-connection')]
        self.assertEqual(len(judged), 1)
        self.assertIn('MET', judged[0])
        floors = scenarios.floor_lines(nc, nfloors, py)
        self.assertIn('close floor', floors[0])


class Parsing(unittest.TestCase):
    def test_parse_wrk(self):
        w = compare.parse_wrk(WRK_SAMPLE)
        self.assertEqual(w['requests'], 39000)
        self.assertEqual(w['rps'], 19500.0)
        self.assertAlmostEqual(w['p50_ms'], 0.3)
        self.assertAlmostEqual(w['p99_ms'], 8.2)
        self.assertAlmostEqual(w['max_ms'], 21.5)
        self.assertEqual(w['non2xx'], 2)
        self.assertEqual(w['socket_errors'], {'connect': 0, 'read': 12, 'write': 0, 'timeout': 3})

    def test_passive_opens(self):
        self.assertIsInstance(compare.tcp_passive_opens(), int)


class Floor(unittest.TestCase):
    def test_hello(self):
        r = floor.measure(str(compare.APPS_DIR / 'hello.py'), repeats=2, target_seconds=0.02)
        self.assertEqual(r['body_len'], 13)
        self.assertGreater(r['us_per_call'], 0)
        self.assertEqual(len(r['us_per_call_all']), 2)


if __name__ == '__main__':
    unittest.main()
