"""What the schemathesis tests of the API share: the response checks and a warning filter."""

from __future__ import annotations

from typing import Any, Final

import pytest
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

__all__ = ["RESPONSE_CHECKS", "SCHEMATHESIS_RANDOM_IS_NOT_AN_ERROR"]

RESPONSE_CHECKS: Final[list[Any]] = [
    not_a_server_error, status_code_conformance, content_type_conformance,
    response_schema_conformance]
"""Never a 5xx; status, content type and body as the OpenAPI document says."""

# Some of schemathesis's own strategies draw from the `random` module, so now and then
# Hypothesis warns about it (HypothesisDeprecationWarning, an error under our warning
# filters) and the run fails before any request is made: not ours to fix, so not an error.
SCHEMATHESIS_RANDOM_IS_NOT_AN_ERROR: Final = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning")
