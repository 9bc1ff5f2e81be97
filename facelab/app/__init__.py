"""The desktop application (``facelab gui``): three linked views, dataset browsing, identity,
training in the background and figure export.

Modules without the ``_qt`` prefix hold state and logic that runs without Qt (``state``, what is
on show; ``session``, ``startup``, ``identity``, ``files``, ``export``, ``training_run``,
``threads``) or wrap Qt services (``settings``, ``workers``); ``_qt_*`` modules are widgets and the
window (``_qt_main_window``, its menus in ``_qt_menus``, the listed samples' background predictions
in ``_qt_listed_predictions``; the training panel ``_qt_training_panel`` around its form
``_qt_training_form``). Importing this package imports no Qt; ``facelab gui``
(:func:`facelab.app.launch.run_gui`) starts the app.
"""
