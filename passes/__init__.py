"""graphopt's built-in passes, installed as ``graphopt.passes``.

One entry per pass: a module, or a package whose private ``_helpers`` are its own. Each registers its
pass with ``@register_pass``; the package is advertised through the ``graphopt.passes`` entry-point
group exactly like a user's plugin. The core never imports this package, and the passes import only
the public API (``tests/test_public_api.py``).
"""

if __name__ != "graphopt.passes":  # imported as a top-level ``passes`` from a source checkout
    raise ImportError("this folder is installed as graphopt.passes: import graphopt.passes (after "
                      "`pip install -e .`), not passes, or every pass would be registered twice")
