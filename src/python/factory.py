"""liege: calling an app factory named in the config (`module = pkg:create_app("prod", debug=False)`).

Only literal arguments are accepted (ast.literal_eval), as Gunicorn does: the config names a call, it does
not run code.
"""
import ast


def call(factory, expression):
    try:
        node = ast.parse(expression.strip(), mode="eval").body
    except SyntaxError as err:
        raise ValueError(f"cannot parse the factory call {expression!r}: {err.msg}") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(f"{expression!r} is not a call like create_app() or create_app('prod', debug=False)")
    if any(keyword.arg is None for keyword in node.keywords) or any(isinstance(a, ast.Starred) for a in node.args):
        raise ValueError(f"{expression!r}: *args and **kwargs are not supported")
    try:
        args = [ast.literal_eval(arg) for arg in node.args]
        kwargs = {keyword.arg: ast.literal_eval(keyword.value) for keyword in node.keywords}
    except ValueError:
        raise ValueError(
            f"the arguments of {expression!r} must be Python literals "
            "(strings, numbers, True/False/None, tuples, lists, dicts)"
        ) from None
    app = factory(*args, **kwargs)
    if app is None:
        raise TypeError(f"the factory {expression!r} returned None instead of a WSGI app")
    return app
