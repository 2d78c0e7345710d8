from tests.serve.conftest import tiny_export  # noqa: F401 - the served tiny model, shared
