"""The desktop application (``facelab gui``): three linked views, dataset browsing, identity,
training in the background and figure export.

Modules without the ``_qt`` prefix hold state and logic that runs without Qt (``session``,
``identity``, ``files``, ``export``) or wraps Qt services (``settings``, ``workers``); ``_qt_*``
modules are widgets. Importing this package imports no Qt; ``facelab gui``
(:func:`facelab.app.launch.run_gui`) starts the app.
"""
