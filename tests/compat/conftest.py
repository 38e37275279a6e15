"""tests/compat: the tests that exist for the compatibility matrix (tests/compat/matrix); they use the
integration fixtures (tests/integration/cluster.py), with PG_BIN and HAPROXY_BIN as the matrix sets them."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
