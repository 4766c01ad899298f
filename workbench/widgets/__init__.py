"""Interactive explorers of the notebooks and the app (ipywidgets).

One module per area (``widgets.traces``, ``widgets.instance``, ``widgets.fleet``, ``widgets.energy``,
``widgets.planning``, ``widgets.whatif``), each with its pure ``explore`` function (tested without a page) and
an ``*_explorer`` constructor returning an ipywidgets box; :mod:`workbench.widgets.live` makes them answer at
once, running slow work in the background.
"""
