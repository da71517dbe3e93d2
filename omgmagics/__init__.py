"""omgmagics: the ML lifecycle kit for Jupyter.

``%load_ext omgmagics`` registers ``%omgml %omgdata %omgfeature %omgtrain %omgoptim %omgdeploy
%omgops``; the ``omg`` command takes the same words in a terminal. Heavy libraries are imported
lazily inside the commands that use them.
"""

from .errors import OmgError

__version__ = "0.1.0"
__all__ = ["OmgError", "__version__", "load_ipython_extension"]


def load_ipython_extension(ip):  # noqa: D401 - IPython's hook name
    """Register the magics (``%load_ext omgmagics``)."""
    from .magics import load_ipython_extension as _load

    _load(ip)
