"""One nox session per cell: install the cell's pins, run the pytest client.

The bench names the cells in $BENCH_CELLS (JSON list); each cell's pins are
in cells/<cell>.txt beside this file.
"""

import json
import os

import nox


@nox.session
@nox.parametrize("cell", json.loads(os.environ["BENCH_CELLS"]))
def scenarios(session, cell):
    session.install("-r", f"cells/{cell}.txt")
    session.run(
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "test_scenarios.py",
        env={"BENCH_CELL": cell},
        success_codes=[0, 1],
    )
