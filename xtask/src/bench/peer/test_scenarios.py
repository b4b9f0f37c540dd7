"""The scenarios as a team checks a dependency bump by hand today: a pytest
client that starts the service for each scenario run, waits until it is
healthy, sends the steps' requests and asserts the expected statuses.

The bench writes the scenario runs to $BENCH_WORK (JSON). Each run appends
one line to $BENCH_RESULTS/$BENCH_CELL.jsonl, so the bench can check that
every run really happened; `error` there is the client's own failure.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

with open(os.environ["BENCH_WORK"], encoding="utf-8") as work_file:
    WORK = json.load(work_file)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fill(text, values):
    """The config's {placeholders}."""
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def interpolate(value, values):
    """The scenario's {{variables}}, in strings, lists and objects."""
    if isinstance(value, str):
        return re.sub(
            r"\{\{\s*([^}]+?)\s*\}\}",
            lambda match: values.get(match.group(1), match.group(0)),
            value,
        )
    if isinstance(value, list):
        return [interpolate(item, values) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item, values) for key, item in value.items()}
    return value


def pointer(document, path):
    for part in path.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(document, list):
            document = document[int(part)]
        else:
            document = document[part]
    return document


def on_postgres(statement):
    """Runs one statement on the server's own database, outside a transaction."""
    import psycopg2

    settings = WORK["postgres"]
    connection = psycopg2.connect(
        host=settings["db_host"],
        port=settings["db_port"],
        user=settings["db_user"],
        password=settings["db_password"],
        dbname="postgres",
    )
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def fresh_database(kind, folder):
    if kind == "sqlite":
        path = os.path.join(folder, "service.sqlite3")
        return {"sqlite_path": path, "database_url": "sqlite:///" + path}
    name = "bench_" + uuid.uuid4().hex
    on_postgres(f'CREATE DATABASE "{name}"')
    settings = WORK["postgres"]
    host, port = settings["db_host"], settings["db_port"]
    url = f"postgresql://{settings['db_user']}:{settings['db_password']}@"
    url += f"/{name}?host={host}&port={port}" if host.startswith("/") else f"{host}:{port}/{name}"
    return dict(settings, db_name=name, database_url=url)


def drop_database(database):
    if "db_name" in database:
        on_postgres(f'DROP DATABASE IF EXISTS "{database["db_name"]}" WITH (FORCE)')


def wait_healthy(service, base_url):
    deadline = time.monotonic() + WORK["startup_timeout_s"]
    while time.monotonic() < deadline:
        if service.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(base_url + WORK["health_path"], timeout=1) as answer:
                if answer.status < 500:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    return False


def send(base_url, step, values):
    body = None
    headers = {name: interpolate(value, values) for name, value in step["headers"]}
    if "json" in step:
        body = json.dumps(interpolate(step["json"], values)).encode()
        headers.setdefault("Content-Type", "application/json")
    elif "text" in step:
        body = interpolate(step["text"], values).encode()
    request = urllib.request.Request(
        base_url + interpolate(step["path"], values),
        data=body,
        headers=headers,
        method=step["method"],
    )
    try:
        with urllib.request.urlopen(request, timeout=WORK["request_timeout_s"]) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as answer:
        return answer.code, dict(answer.headers), answer.read()
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return None, {}, b""


def stop(service):
    try:
        os.killpg(service.pid, signal.SIGTERM)
        service.wait(timeout=WORK["shutdown_grace_s"])
    except subprocess.TimeoutExpired:
        os.killpg(service.pid, signal.SIGKILL)
        service.wait()
    except ProcessLookupError:
        pass


@pytest.mark.parametrize("run", WORK["runs"], ids=[run["key"] for run in WORK["runs"]])
def test_scenario(run, tmp_path):
    result = {"key": run["key"], "started": False, "statuses": [], "error": None}
    try:
        failures = replay(run, tmp_path, result)
    except Exception as error:
        result["error"] = repr(error)
        raise
    finally:
        path = os.path.join(os.environ["BENCH_RESULTS"], os.environ["BENCH_CELL"] + ".jsonl")
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(result) + "\n")
    assert not failures, failures


def replay(run, folder, result):
    """Starts the service on a fresh database, sends the steps; the failures."""
    port = free_port()
    database = fresh_database(run["database"], str(folder))
    placeholders = {
        "python": sys.executable,
        "venv": sys.prefix,
        "port": str(port),
        "secret": WORK["secret"],
        "service_dir": WORK["service_dir"],
        **database,
    }
    env = dict(os.environ)
    env.update({name: fill(value, placeholders) for name, value in run["env"].items()})
    command = [fill(part, placeholders) for part in WORK["command"]]
    base_url = f"http://127.0.0.1:{port}"
    failures = []
    try:
        with open(folder / "service.log", "wb") as log:
            service = subprocess.Popen(
                command,
                cwd=WORK["service_dir"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            result["started"] = wait_healthy(service, base_url)
            if result["started"]:
                failures = send_steps(run, base_url, result["statuses"])
            elif not run["record_startup"]:
                failures.append("the service never answered healthy")
        finally:
            stop(service)
    finally:
        drop_database(database)
    return failures


def send_steps(run, base_url, statuses):
    values = dict(run["values"])
    for step in run["steps"]:
        status, headers, body = send(base_url, step, values)
        statuses.append(status)
        if status is None:
            return [f"{step['name']}: no response"]
        if step.get("expect_status") not in (None, status):
            return [f"{step['name']}: expected {step['expect_status']}, got {status}"]
        try:
            for capture in step["captures"]:
                if "json" in capture:
                    found = pointer(json.loads(body), capture["json"])
                    values[capture["variable"]] = found if isinstance(found, str) else json.dumps(found)
                else:
                    values[capture["variable"]] = headers[capture["header"]]
        except (ValueError, LookupError) as missing:
            return [f"{step['name']}: capture found nothing ({missing!r})"]
    return []
