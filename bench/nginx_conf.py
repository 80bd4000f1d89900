"""nginx configurations for bench/: the front of the nginx scenarios and the `return 200` floor.

Stdlib only, no I/O besides writing the config: compare.py starts the process (foreground, `daemon off;`,
its own prefix, pid, logs and temp paths in a private directory, 127.0.0.1 only) and stops it.

Fronts (what sits between nginx and the app server; the upstream is `unix:PATH` or `127.0.0.1:PORT`):

  uwsgi        `uwsgi_pass unix:SOCK`: one new upstream connection per request (nginx's default).
  uwsgi-ka     the same through `upstream { server unix:SOCK; keepalive N; }`. nginx's uwsgi module never
               marks an upstream connection reusable (ngx_http_uwsgi_module.c sets no `u->keepalive`, and
               there is no `uwsgi_keep_conn` as there is `fastcgi_keep_conn`): the uwsgi protocol has no
               response framing of its own, so nginx still closes after every response. The row measures
               that the directive buys nothing, whatever the server does.
  http-ka      `proxy_pass http://UPSTREAM` over HTTP/1.1 with `keepalive N` and `Connection ""`: the way
               nginx does keep its upstream connections (the server must speak HTTP/1.1 keep-alive).

The floor: `return 200 "Hello, World!"` (the hello app's 13-byte body, text/plain), no app at all.

Access logs are off everywhere (the app servers run with their request logs off too), so the nginx CPU
figure is the proxying itself.
"""

import os
from pathlib import Path

HELLO_BODY = 'Hello, World!'

# What Debian's /etc/nginx/uwsgi_params sends (used when that file is missing).
UWSGI_PARAMS = """\
uwsgi_param  QUERY_STRING       $query_string;
uwsgi_param  REQUEST_METHOD     $request_method;
uwsgi_param  CONTENT_TYPE       $content_type;
uwsgi_param  CONTENT_LENGTH     $content_length;
uwsgi_param  REQUEST_URI        $request_uri;
uwsgi_param  PATH_INFO          $document_uri;
uwsgi_param  DOCUMENT_ROOT      $document_root;
uwsgi_param  SERVER_PROTOCOL    $server_protocol;
uwsgi_param  REQUEST_SCHEME     $scheme;
uwsgi_param  HTTPS              $https if_not_empty;
uwsgi_param  REMOTE_ADDR        $remote_addr;
uwsgi_param  REMOTE_PORT        $remote_port;
uwsgi_param  SERVER_PORT        $server_port;
uwsgi_param  SERVER_NAME        $server_name;
"""

FRONTS = ('uwsgi', 'uwsgi-ka', 'http-ka')


def nginx_binary():
    import shutil
    for cand in (shutil.which('nginx'), '/usr/sbin/nginx'):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise FileNotFoundError('nginx not found (apt-get install nginx)')


def _location(front, upstream, keepalive, params):
    """(upstream block, location body) for one front."""
    if front == 'uwsgi':
        return '', f'include {params};\n            uwsgi_pass {upstream};'
    if front == 'uwsgi-ka':
        up = f'    upstream app {{\n        server {upstream};\n        keepalive {keepalive};\n    }}\n'
        return up, f'include {params};\n            uwsgi_pass app;'
    if front == 'http-ka':
        up = f'    upstream app {{\n        server {upstream};\n        keepalive {keepalive};\n    }}\n'
        return up, ('proxy_http_version 1.1;\n            proxy_set_header Connection "";\n'
                    '            proxy_set_header Host $host;\n            proxy_pass http://app;')
    raise ValueError(f'unknown nginx front {front!r} (one of {", ".join(FRONTS)})')


def write_config(workdir, port, workers, front=None, upstream=None, keepalive=16):
    """Write nginx.conf (+ uwsgi_params, temp dirs) into workdir; return the argv that runs it.

    front=None: the `return 200` floor. Otherwise nginx proxies / to the server at `upstream`
    ('unix:/path' or '127.0.0.1:port').
    """
    workdir = Path(workdir)
    for sub in ('client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi', 'logs'):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    params = Path('/etc/nginx/uwsgi_params')
    (workdir / 'uwsgi_params').write_text(params.read_text() if params.exists() else UWSGI_PARAMS)
    if front is None:
        upstream_block = ''
        body = f'default_type text/plain;\n            return 200 "{HELLO_BODY}";'
    else:
        upstream_block, body = _location(front, upstream, keepalive, workdir / 'uwsgi_params')
    user = 'user root;\n' if os.geteuid() == 0 else ''
    conf = workdir / 'nginx.conf'
    conf.write_text(f"""\
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 16384;
{user}pid {workdir}/nginx.pid;
error_log {workdir}/logs/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
{upstream_block}    server {{
        listen 127.0.0.1:{port} backlog=1024;
        server_name localhost;
        location / {{
            {body}
        }}
    }}
}}
""")
    return [nginx_binary(), '-p', str(workdir), '-c', str(conf), '-e', str(workdir / 'logs' / 'error.log')]
