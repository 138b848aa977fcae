"""Every command's --help (examples, the environment it reads), --version, and typos refused (issue 18)."""

from __future__ import annotations

import ast
import importlib

import pytest
from support import REPO, base_env, run_script

from lakehouse import __version__
from lakehouse.commands.dispatch import COMMANDS
from lakehouse.commands.dispatch import main as lakehouse
from lakehouse.settings import ENV_VARS, STANDARD_ENV

SCRIPTS = {script: name for name, (script, _text) in COMMANDS.items()}
BEAM_HINT = "(Beam pipeline options go after --, e.g. -- --direct_num_workers=2)"


def _exit_output(capsys: pytest.CaptureFixture[str], main, *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    return exited.value.code, capsys.readouterr().out


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_script_helps_with_examples_and_its_environment(script: str, capsys) -> None:
    main = importlib.import_module(f"lakehouse.commands.{SCRIPTS[script]}").main
    code, text = _exit_output(capsys, main, "--help")
    assert code == 0
    examples, environment = text.split("\nexamples:\n")[1].split("\n\nenvironment:\n")
    assert f"  python {script} " in examples or f"  python {script}\n" in examples
    variables = [line.split()[0] for line in environment.splitlines()[:-1]]  # the last line is about .env
    standard = {name for rows in STANDARD_ENV.values() for name, _what in rows}
    assert set(variables) <= {*ENV_VARS.values(), *standard, "LAKEHOUSE_LOG_FORMAT", "LAKEHOUSE_USER"}
    assert "LAKEHOUSE_LOG_FORMAT" in variables
    assert "--log-level LEVEL" in text

    code, text = _exit_output(capsys, main, "--version")
    assert (code, text) == (0, f"{script} {__version__}\n")


def test_the_environment_blocks_name_what_each_command_reads(capsys) -> None:
    def variables(name: str) -> set[str]:
        text = _exit_output(capsys, importlib.import_module(f"lakehouse.commands.{name}").main, "--help")[1]
        return {line.split()[0] for line in text.split("\nenvironment:\n")[1].splitlines()[:-1]}

    assert variables("produce") == {
        "KAFKA_BOOTSTRAP_SERVERS", "LAKEHOUSE_TOPIC_PREFIX", "LAKEHOUSE_LOG_FORMAT", "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "KAFKA_SSL_CA_LOCATION",
        "KAFKA_CONFIG_FILE", "KAFKA_REPLICATION_FACTOR"}
    assert variables("retention") == {"DATA_LAKE_ROOT", "LAKEHOUSE_LOG_FORMAT", "AWS_ENDPOINT_URL",
                                      "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}
    assert {"MYSQL_PASSWORD", "KSQLDB_URL", "DATA_LAKE_ROOT", "LAKEHOUSE_USER"} <= variables("config")


def test_sync_keeps_its_version_number_and_still_answers_version(capsys) -> None:
    """sync_to_mysql.py --version N stamps the snapshot version (its contract); alone it prints the version."""
    from lakehouse.commands.sync import _parser

    assert _parser().parse_args(["--version", "7"]).version == 7
    assert _parser().parse_args([]).version is None
    assert _exit_output(capsys, _parser().parse_args, "--version") == (0, f"sync_to_mysql.py {__version__}\n")


def test_lakehouse_runs_each_script_as_a_subcommand(capsys) -> None:
    code, text = _exit_output(capsys, lakehouse, "--version")
    assert (code, text) == (0, f"lakehouse {__version__}\n")
    code, text = _exit_output(capsys, lakehouse, "--help")
    assert code == 0 and all(f"  {name} " in text and script in text for name, (script, _t) in COMMANDS.items())

    code, text = _exit_output(capsys, lakehouse, "land", "--help")
    assert code == 0 and text.startswith("usage: lakehouse land [-h]")
    assert "  lakehouse land --until-end " in text and "python kafka_consumer_datalake.py" not in text
    assert _exit_output(capsys, lakehouse, "retention", "--version") == (0, f"lakehouse retention {__version__}\n")


def test_lakehouse_refuses_an_unknown_command(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        lakehouse(["lnad"])
    assert exited.value.code == 2
    assert "lakehouse: error: argument COMMAND: invalid choice: 'lnad'" in capsys.readouterr().err


def test_the_scripts_are_shims_over_the_commands() -> None:
    for script, name in SCRIPTS.items():
        tree = ast.parse((REPO / script).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert imported == {"lakehouse", f"lakehouse.commands.{name}"}, script
        assert not [node for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)], script


@pytest.mark.parametrize("typo", [("--task", "all", "--once", "--mesages", "10"), ("--history", "--limt", "5")])
def test_the_orchestrator_refuses_unknown_options(typo: tuple[str, ...], tmp_path) -> None:
    result = run_script("beam_orchestrator.py", *typo, env=base_env(DATA_LAKE_ROOT=str(tmp_path)))
    assert result.returncode == 2 and result.stdout == ""
    refused = f"beam_orchestrator.py: error: unrecognized arguments: {' '.join(typo[-2:])} {BEAM_HINT}"
    assert result.stderr.splitlines()[-1] == refused
    assert not any(tmp_path.iterdir()), "nothing ran"
