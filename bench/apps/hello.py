"""Hello-world WSGI app for bench/ (fixed 13-byte body with Content-Length)."""


def application(env, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '13')])
    return [b'Hello, World!']
