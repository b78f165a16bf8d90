"""graphopt's built-in passes, installed as ``graphopt.passes``.

Each module holds one pass and registers it with ``@register_pass``; the package is advertised
through the ``graphopt.passes`` entry-point group exactly like a user's plugin. The core never imports
this package.
"""
