"""Every AWS Lambda entry point: one module per function, each exposing ``handler``.

Each handler reads :class:`adapters.settings.Settings` once per container (on its first call,
never at import), builds what it runs through :mod:`adapters.bootstrap`, and declares in
``NEEDS`` the settings its function must be given: the template sets exactly those (a test
holds the two together).
"""
