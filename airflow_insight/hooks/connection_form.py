"""The ``insight`` connection form for Airflow lines that read it from the hook (before 3.2).

Airflow 3.2 builds the form from the provider info's ``conn-fields`` and ``ui-field-behaviour``
(:mod:`airflow_insight.provider_info`) and then no longer calls the hook's methods. Before 3.2
(feature ``declarative connection form`` off) the providers manager calls the hook's
``get_connection_form_widgets`` and ``get_ui_field_behaviour`` instead, and only where wtforms and
Flask-AppBuilder are installed (the FAB provider brings them): both are built here from the same
declaration, so the two ways cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from airflow_insight.provider_info import get_provider_info


def _connection_type() -> dict[str, Any]:
    types: list[dict[str, Any]] = get_provider_info()["connection-types"]
    return next(entry for entry in types if entry["connection-type"] == "insight")


def field_behaviour() -> dict[str, Any]:
    """Hidden fields, labels and placeholders of the standard fields."""
    return dict(_connection_type()["ui-field-behaviour"])


def form_widgets() -> dict[str, Any]:
    """One wtforms field per typed extra, as the pre-3.2 providers manager expects them."""
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import BooleanField, IntegerField, StringField

    widgets: dict[str, Any] = {}
    for name, field in _connection_type()["conn-fields"].items():
        kinds = field["schema"]["type"]
        label = lazy_gettext(field["label"])
        description = field.get("description", "")
        if "boolean" in kinds:
            widgets[name] = BooleanField(label, description=description)
        elif "integer" in kinds:
            widgets[name] = IntegerField(
                label, description=description, widget=BS3TextFieldWidget()
            )
        else:  # numbers too: the older form allows no float field, the hook parses the text
            widgets[name] = StringField(label, description=description, widget=BS3TextFieldWidget())
    return widgets
