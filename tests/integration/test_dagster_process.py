"""What the Dagster process imports: dagster-dbt without dbt-core, which runs in dbt's own
process (``ltv_pipeline.defs.import_dagster_dbt_without_dbt_core``), and the same asset graph
as when dagster-dbt evaluates its selection with dbt-core."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib import metadata

from ltv_pipeline import settings

#: Loads the definitions in a fresh interpreter and prints the asset graph as dagster-dbt built
#: it, which dbt modules were imported, and what the library registry says of dbt. With
#: ``core``, dagster-dbt is imported first, the ordinary way (it imports dbt-core).
PROGRAM = textwrap.dedent(
    """
    import json, sys
    if sys.argv[1] == "core":
        import dagster_dbt
    from dagster_shared.libraries import DagsterLibraryRegistry
    from ltv_pipeline.definitions import defs

    definitions = defs()
    graph = definitions.resolve_asset_graph()
    nodes = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        nodes[key.to_user_string()] = {
            "parents": sorted(p.to_user_string() for p in node.parent_keys),
            "group": node.group_name,
            "description": node.description,
            "checks": sorted(c.to_user_string() for c in node.check_keys),
            "metadata": sorted(node.metadata),
            "kinds": sorted(node.kinds),
            "tags": node.tags,
        }
    for key in graph.asset_check_keys:
        check = graph.get(key)
        nodes["check " + key.to_user_string()] = {
            "description": check.description, "blocking": check.blocking
        }
    ops = {
        asset.op.name: {k: str(v) for k, v in asset.op.tags.items()}
        for asset in definitions.assets or [] if hasattr(asset, "op")
    }
    loaded = sorted(name for name in sys.modules if name.split(".")[0] == "dbt")
    import dbt.version  # still importable once the definitions are loaded
    print(json.dumps({
        "nodes": nodes,
        "ops": ops,
        "dbt_modules": loaded,
        "dbt_version": dbt.version.__version__,
        "registry": DagsterLibraryRegistry.get().get("dbt-core"),
    }, default=str))
    """
)


def _load(way: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, way],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_dagster_process_leaves_dbt_core_out():
    ours, core = _load("ours"), _load("core")
    # the ordinary way imports dbt-core (hundreds of modules); ours imports none of it
    assert len(core["dbt_modules"]) > 100
    assert ours["dbt_modules"] == []
    # and dagster-dbt builds the same assets, dependencies and checks from the manifest
    assert len(ours["nodes"]) > 100
    assert ours["nodes"] == core["nodes"]
    assert ours["ops"] == core["ops"]
    assert ours["ops"]["dbt_models"]["dagster_dbt/select"] == "fqn:*"
    # dbt-core stays importable afterwards, and the code location names it with its version
    installed = metadata.version("dbt-core")
    assert ours["dbt_version"] == core["dbt_version"] == installed
    assert ours["registry"] == core["registry"] == installed


def test_every_dbt_subprocess_is_ltv_dbt():
    # the install made the console script; the resource and `ltv dbt` run it
    from ltv_pipeline.defs.resources import build_resources

    assert settings.dbt_executable().name == "ltv-dbt"
    assert settings.dbt_executable().exists()
    assert build_resources()["dbt"].dbt_executable == str(settings.dbt_executable())
