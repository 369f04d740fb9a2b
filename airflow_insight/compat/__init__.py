"""The one door to Airflow: every Airflow name this provider uses comes through this package.

* :mod:`.sdk`: the public authoring names (operators, hooks, triggers, exceptions, ``conf``),
  taken from ``apache-airflow-providers-common-compat`` where it maps them, so one import line
  serves every Airflow 3 line.
* :mod:`.features`: what the installed Airflow offers beyond that, each a named check on the
  feature itself (never on the version number), logged once per process with why it is off.
* :mod:`.supervisor`: what a trigger asks its triggerer's supervisor (task states, Variables):
  private comms message classes.
* :mod:`.runner`: the trigger runner's private parts: its stop-signal handler and the socket its
  log records travel over.

The import contracts (``.importlinter``) forbid ``airflow`` imports anywhere else in the package,
so an Airflow release that moves a name breaks one place, and a test per Airflow line asserts the
exact set of features that is on (``tests/compat``). See ``docs/airflow-versions.md``.
"""
