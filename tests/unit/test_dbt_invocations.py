"""Pruning dagster-dbt's per-invocation target folders (``defs.dbt.prune_invocation_folders``)."""

import os
import time

import pytest

from ltv_pipeline.defs.dbt import PRUNE_AFTER_SECONDS, prune_invocation_folders, table_keys


def _folder(target, name, mtime):
    path = target / name
    (path / "compiled").mkdir(parents=True)
    (path / "dbt.log").write_text("log")
    os.utime(path, (mtime, mtime))
    return path


def test_only_the_newest_invocation_folders_of_the_step_are_kept(tmp_path):
    # 13 nights of the dbt step, named as dagster-dbt names them, in shuffled creation order
    ages = [5, 12, 0, 7, 3, 11, 1, 9, 4, 10, 2, 8, 6]
    nights = {
        age: _folder(tmp_path, f"dbt_models-{age:07x}-abc{age:04d}", 1_000_000 - age)
        for age in ages
    }
    # what is not a folder of this step stays: dbt's own files, another step's folders
    others = [
        _folder(tmp_path, "compiled", 1),
        _folder(tmp_path, "dbt_models_extra-0000001-0000001", 1),
        _folder(tmp_path, "other_step-0000001-0000001", 1),
    ]
    (tmp_path / "manifest.json").write_text("{}")

    deleted = prune_invocation_folders(nights[0], keep=10)

    assert sorted(deleted) == sorted(nights[age] for age in (10, 11, 12))
    assert {p for p in nights.values() if p.exists()} == {nights[a] for a in range(10)}
    assert all(p.exists() for p in others)
    assert (tmp_path / "manifest.json").exists()


def test_the_latest_folder_is_kept_even_when_its_clock_is_behind(tmp_path):
    older = [_folder(tmp_path, f"dbt_models-{i:07x}-0000000", 2_000 + i) for i in range(3)]
    latest = _folder(tmp_path, "dbt_models-fffffff-0000000", 1_000)

    prune_invocation_folders(latest, keep=2)

    # this invocation is one of the two kept, whatever its folder's time says
    assert latest.exists()
    assert [p.exists() for p in older] == [False, False, True]


def test_a_folder_younger_than_the_age_limit_stays_however_many_are_newer(tmp_path):
    """An invocation that started before ten others finished may still be writing."""
    now = time.time()
    running = _folder(tmp_path, "dbt_models-0000001-0000000", now - 600)
    finished = [_folder(tmp_path, f"dbt_models-000000{i}-0000000", now - i) for i in (2, 3)]
    old = _folder(tmp_path, "dbt_models-0000009-0000000", now - 7 * 3600)
    latest = _folder(tmp_path, "dbt_models-fffffff-0000000", now)

    deleted = prune_invocation_folders(latest, keep=1, min_age_seconds=3600)

    assert deleted == [old]
    assert running.exists() and all(p.exists() for p in finished)
    assert PRUNE_AFTER_SECONDS >= 3600  # a night's dbt build at 100M orders takes minutes


def test_keep_must_be_positive(tmp_path):
    latest = _folder(tmp_path, "dbt_models-0000000-0000000", 1)
    with pytest.raises(ValueError, match="at least 1"):
        prune_invocation_folders(latest, keep=0)


def test_table_keys_come_from_whole_table_uniqueness_tests_only():
    """A uniqueness test restricted to a night's customers (``touched_only``) does not make a
    key: it does not say the whole table is unique, and publishing would sort on ties."""
    intermediate = table_keys("intermediate")
    assert intermediate["int_customer_purchases_summarized"] == ["customer_id"]
    assert "int_orders_valued" not in intermediate  # touched_only, by order_id
    assert "int_purchases_grouped" not in intermediate  # touched_only
    assert "int_purchase_months_grouped" not in intermediate  # touched_only
    marts = table_keys("marts")
    assert marts["ltv_summary"] == ["dimension", "dimension_value"]  # unique_combination
    assert marts["customer_segments"] == ["customer_id"]  # a Python mart's meta.grain
    assert "segment_summary" not in marts  # no grain declared: sorted by every column


def test_project_files_are_the_parsed_files_without_dbts_output_folders(tmp_path):
    from ltv_pipeline.dbt_runner import project_files

    for name in [
        "dbt_project.yml",
        "models/marts/customers.sql",
        "models/target/kept.sql",  # a folder named like dbt's output, but not at the top
        "macros/a-b/m.sql",
        "macros/a/m.sql",
        "target/manifest.json",
        "target/dbt_models-1/compiled/x.sql",
        "logs/dbt.log",
        "dbt_packages/pkg/dbt_project.yml",
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    assert project_files(tmp_path) == [
        "dbt_project.yml",
        "macros/a-b/m.sql",
        "macros/a/m.sql",
        "models/marts/customers.sql",
        "models/target/kept.sql",
    ]
