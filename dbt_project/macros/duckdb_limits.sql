{#- DuckDB's memory limit, threads and spill folder for dbt's connection, from the same
    environment variables as the Python side (ltv_pipeline.settings.duckdb_config), checked the
    same way before they reach SQL. They are instance-wide settings, so one statement at the
    start of the run covers every thread; unset variables leave DuckDB's defaults. Other
    engines have nothing to set. -#}
{% macro apply_duckdb_limits() -%}
    {{ return(adapter.dispatch('apply_duckdb_limits')()) }}
{%- endmacro %}

{% macro default__apply_duckdb_limits() -%}
    select 1
{%- endmacro %}

{% macro duckdb__apply_duckdb_limits() -%}
    {%- set statements = [] -%}
    {%- set memory = env_var('LTV_DUCKDB_MEMORY_LIMIT', '') | trim -%}
    {%- if memory -%}
        {%- if not modules.re.fullmatch('[0-9]+(\\.[0-9]+)? ?([KMGT]i?B|%)', memory) -%}
            {{ exceptions.raise_compiler_error(
                "LTV_DUCKDB_MEMORY_LIMIT=" ~ memory ~ ": give an amount like 6GiB or 50%") }}
        {%- endif -%}
        {%- do statements.append("set memory_limit = '" ~ memory ~ "'") -%}
    {%- endif -%}
    {%- set threads = env_var('LTV_DUCKDB_THREADS', '') | trim -%}
    {%- if threads -%}
        {%- if not modules.re.fullmatch('[1-9][0-9]*', threads) -%}
            {{ exceptions.raise_compiler_error(
                "LTV_DUCKDB_THREADS=" ~ threads ~ ": give a whole number of threads >= 1") }}
        {%- endif -%}
        {%- do statements.append("set threads = " ~ threads) -%}
    {%- endif -%}
    {%- set temp = env_var('LTV_DUCKDB_TEMP_DIR', '') | trim -%}
    {%- if temp -%}
        {%- if not temp.startswith('/') -%}
            {{ exceptions.raise_compiler_error(
                "LTV_DUCKDB_TEMP_DIR=" ~ temp ~ " is relative; give an absolute path") }}
        {%- endif -%}
        {%- do statements.append("set temp_directory = '" ~ temp | replace("'", "''") ~ "'") -%}
    {%- endif -%}
    {{ return(statements | join(';\n') if statements else 'select 1') }}
{%- endmacro %}
