"""The python tool against a real zygote: real forks, no mocks."""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from workers.tools import python
from workers.tools.base import ToolContext
from workers.zygote import Zygote

MakeCtx = Callable[..., ToolContext]


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    zyg = Zygote(python.HANDLER)
    zyg.start()
    yield zyg
    zyg.stop()


@pytest.fixture
def make_ctx(zygote: Zygote) -> Iterator[MakeCtx]:
    made: list[ToolContext] = []

    def make(**fields: Any) -> ToolContext:
        ctx = ToolContext(step="step", task="task", **fields)
        ctx.resources[python.SESSION_KEY] = zygote.session()
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        python.close_resources(ctx)


def run(ctx: ToolContext, code: str, **config: Any) -> dict[str, Any]:
    return python.run({"code": code, **config}, ctx)


# --- Results -----------------------------------------------------------------


def test_it_returns_the_result_global(make_ctx: MakeCtx) -> None:
    out = run(
        make_ctx(),
        "result = {'double': n * 2, 'zip': z}",
        input={"n": 21, "z": "01234"},
    )

    assert out["status"] == "ok"
    assert out["data"] == {"double": 42, "zip": "01234"}
    assert out["meta"]["duration_ms"] > 0


def test_it_calls_main_with_inputs_context_and_kwargs(make_ctx: MakeCtx) -> None:
    code = (
        "def main(a, b, missing, context=None, **kw):\n"
        "    return {'sum': a + b, 'missing': missing, 'ctx': context, 'kw': kw}\n"
    )
    config = {"input": {"a": 1, "b": 2, "extra": "x"}, "context": {"k": "v"}}

    out = run(make_ctx(), code, **config)

    assert out["data"] == {
        "sum": 3,
        "missing": None,
        "ctx": {"k": "v"},
        "kw": {"extra": "x"},
    }


def test_it_runs_async_main(make_ctx: MakeCtx) -> None:
    code = (
        "import asyncio\n"
        "async def main(n):\n"
        "    await asyncio.sleep(0)\n"
        "    return n + 1\n"
    )

    assert run(make_ctx(), code, input={"n": 1})["data"] == 2


def test_it_does_not_run_main_twice_via_dunder_main(make_ctx: MakeCtx) -> None:
    code = (
        "calls = []\n"
        "def main():\n"
        "    calls.append(1)\n"
        "    return len(calls)\n"
        "if __name__ == '__main__':\n"
        "    main()\n"
    )

    assert run(make_ctx(), code)["data"] == 1


def test_it_injects_input_data_unless_an_input_has_that_name(make_ctx: MakeCtx) -> None:
    ctx = make_ctx()
    shim = run(ctx, "result = input_data.get('k')", input={"k": 5})
    explicit = run(ctx, "result = input_data", input={"input_data": [1], "k": 5})

    assert shim["data"] == 5
    assert explicit["data"] == [1]


def test_it_injects_context_data_and_modules(make_ctx: MakeCtx) -> None:
    code = (
        "result = [data, context['x'], json.dumps(1), bool(uuid.uuid4()),\n"
        "          datetime.date(2020, 1, 2).isoformat()]"
    )

    out = run(make_ctx(), code, context={"data": {"d": 1}, "x": 2})

    assert out["data"] == [{"d": 1}, 2, "1", True, "2020-01-02"]


def test_it_imports_libs_in_both_forms(make_ctx: MakeCtx) -> None:
    libs = {
        "rnd": "random",
        "Decimal": {"from": "decimal", "import": "Decimal"},
        "datetime": {"from": "datetime", "import": "datetime"},
    }
    code = "result = [rnd.__name__, str(Decimal('1.5') * 2), datetime(2024, 5, 6).year]"

    assert run(make_ctx(), code, libs=libs)["data"] == ["random", "3.0", 2024]


def test_inputs_win_over_injected_names(make_ctx: MakeCtx) -> None:
    out = run(make_ctx(), "result = [json, data]", input={"json": "j", "data": "d"})

    assert out["data"] == ["j", "d"]


def test_it_reports_when_no_result_was_set(make_ctx: MakeCtx) -> None:
    out = run(make_ctx(), "b = 2\na = 1", input={"n": 1})

    assert out["data"] == {
        "status": "success",
        "message": "code ran without setting result",
        "locals_keys": ["a", "b"],
    }


def test_it_converts_results_to_json(make_ctx: MakeCtx) -> None:
    code = (
        "from decimal import Decimal\n"
        "result = {'d': Decimal('1.25'), 't': datetime.date(2024, 1, 2),\n"
        "          's': {3, 1}, 'tu': (1, 2), 'b': b'hi', 'raw': b'\\xff'}\n"
    )

    data = run(make_ctx(), code)["data"]

    assert data == {
        "d": 1.25,
        "t": "2024-01-02",
        "s": [1, 3],
        "tu": [1, 2],
        "b": "hi",
        "raw": "/w==",
    }


def test_a_status_error_result_is_still_ok_here(make_ctx: MakeCtx) -> None:
    out = run(make_ctx(), "result = {'status': 'error'}")

    assert out["status"] == "ok"
    assert out["data"] == {"status": "error"}


# --- Code sources ----------------------------------------------------------


def test_it_reads_code_from_script_b64_and_file(
    make_ctx: MakeCtx, tmp_path: Any
) -> None:
    ctx = make_ctx()
    script_file = tmp_path / "task.py"
    script_file.write_text("result = 'file'")
    inline = {"source": {"type": "inline", "code": "result = 'inline'"}}
    b64 = base64.b64encode(b"result = 'b64'").decode()

    assert python.run({"script": inline, "code": "result = 0"}, ctx)["data"] == "inline"
    assert python.run({"script": {"code": "result = 'alias'"}}, ctx)["data"] == "alias"
    assert python.run({"code_b64": b64, "code": "result = 0"}, ctx)["data"] == "b64"
    file_source = {"source": {"type": "file", "path": str(script_file)}}
    assert python.run({"script": file_source}, ctx)["data"] == "file"


def test_missing_code_is_a_config_error(make_ctx: MakeCtx) -> None:
    out = python.run({"input": {"a": 1}}, make_ctx())

    assert out["status"] == "error"
    assert out["error"]["kind"] == "config"
    assert "no code" in out["error"]["message"]


# --- Failures ----------------------------------------------------------------


def test_an_exception_is_reported_with_a_user_traceback(make_ctx: MakeCtx) -> None:
    out = run(make_ctx(), "def f(x):\n    return 1 / x\nresult = f(0)")

    assert out["status"] == "error"
    assert out["error"] == {
        "kind": "exception",
        "message": "ZeroDivisionError: division by zero",
        "retryable": False,
    }
    assert out["py"]["exception"] == "ZeroDivisionError"
    tb = out["py"]["traceback"]
    assert 'File "<noetl step.task>", line 2, in f' in tb
    assert "return 1 / x" in tb
    assert "_run_code" not in tb  # the runner's own frames are trimmed


def test_a_module_level_return_is_a_syntax_error_with_its_line(
    make_ctx: MakeCtx,
) -> None:
    out = run(make_ctx(), "x = 1\nreturn x")

    assert out["error"]["kind"] == "exception"
    assert out["error"]["message"] == "SyntaxError: 'return' outside function (line 2)"
    assert out["py"]["exception"] == "SyntaxError"
    assert "return x" in out["py"]["traceback"]


def test_an_unserialisable_result_is_an_error(make_ctx: MakeCtx) -> None:
    out = run(make_ctx(), "result = []\nresult.append(result)")

    assert out["error"]["kind"] == "exception"
    assert "not JSON-serialisable" in out["error"]["message"]


def test_a_timeout_kills_the_child_and_the_session_recovers(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(timeout=0.5)
    started = time.monotonic()

    out = run(ctx, "while True: pass")

    assert time.monotonic() - started < 0.5 + 2.5
    assert out["error"] == {
        "kind": "timeout",
        "message": "python task exceeded its timeout of 0.5s",
        "retryable": False,
    }
    assert run(ctx, "result = 'alive'")["data"] == "alive"


def test_a_child_ignoring_sigterm_gets_sigkill(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(timeout=0.2)
    code = (
        "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: pass"
    )
    started = time.monotonic()

    out = run(ctx, code)

    assert out["error"]["kind"] == "timeout"
    assert time.monotonic() - started < 0.2 + 2.0 + 1.0
    assert run(ctx, "result = 1")["data"] == 1


def test_cancellation_stops_a_running_task(make_ctx: MakeCtx) -> None:
    ctx = make_ctx()
    threading.Timer(0.2, ctx.cancelled.set).start()
    started = time.monotonic()

    out = run(ctx, "import time\ntime.sleep(30)")

    assert out["error"]["kind"] == "cancelled"
    assert time.monotonic() - started < 2.0


def test_a_dying_child_is_reported_and_replaced(make_ctx: MakeCtx) -> None:
    ctx = make_ctx()

    out = run(ctx, "os._exit(3)")

    assert out["error"]["kind"] == "exception"
    assert "died" in out["error"]["message"]
    assert "exited with status 3" in out["error"]["message"]
    assert run(ctx, "result = 2")["data"] == 2


# --- Isolation -------------------------------------------------------------


def test_the_child_does_not_see_worker_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOETL_ENCRYPTION_KEY", "sekrit-key")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:sekrit@db/x")
    monkeypatch.setenv("NOETL_PY_ENV_GREETING", "hello")
    zyg = Zygote(python.HANDLER)
    ctx = ToolContext(resources={python.SESSION_KEY: zyg.session()})
    code = (
        "with open('/proc/self/environ', 'rb') as fh:\n"
        "    raw = fh.read()\n"
        "result = [sorted(os.environ), b'sekrit' in raw, os.environ.get('GREETING')]"
    )
    try:
        names, leaked, greeting = run(ctx, code)["data"]
    finally:
        python.close_resources(ctx)
        zyg.stop()

    assert "NOETL_ENCRYPTION_KEY" not in names
    assert "DATABASE_URL" not in names
    assert not leaked
    assert greeting == "hello"


def test_each_request_gets_fresh_globals_in_one_child(make_ctx: MakeCtx) -> None:
    ctx = make_ctx()

    first = run(ctx, "leak = 1\nresult = os.getpid()")
    second = run(ctx, "result = [os.getpid(), 'leak' in globals()]")

    assert second["data"] == [first["data"], False]


def test_the_working_directory_is_private_and_removed(make_ctx: MakeCtx) -> None:
    ctx = make_ctx()
    cwd = run(ctx, "open('scratch.txt', 'w').write('x')\nresult = os.getcwd()")["data"]
    assert os.path.isdir(cwd)

    python.close_resources(ctx)

    deadline = time.monotonic() + 2.0
    while os.path.exists(cwd) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not os.path.exists(cwd)


def test_output_goes_to_the_command_log(make_ctx: MakeCtx) -> None:
    lines: list[str] = []
    ctx = make_ctx(log=lines.append)

    out = run(
        ctx, "import sys\nprint('hello')\nprint('oops', file=sys.stderr)\nresult = 1"
    )

    assert lines == ["[stdout] hello", "[stderr] oops"]
    assert "py" not in out


def test_sessions_in_several_threads_run_concurrently(make_ctx: MakeCtx) -> None:
    contexts = [make_ctx() for _ in range(4)]
    results: dict[int, list[Any]] = {}

    def work(i: int) -> None:
        results[i] = [
            run(contexts[i], "result = [n, os.getpid()]", input={"n": n})["data"]
            for n in range(20)
        ]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    for i in range(4):
        assert [n for n, _ in results[i]] == list(range(20))
    pids = {pid for i in range(4) for _, pid in results[i]}
    assert len(pids) == 4  # one child per session


def test_output_is_capped_to_its_tail(make_ctx: MakeCtx) -> None:
    lines: list[str] = []
    ctx = make_ctx(log=lines.append)

    run(ctx, "print('a' * 1_500_000 + 'END')")

    assert len(lines) == 1
    assert lines[0].startswith("[stdout] [... 500004 characters dropped]")
    assert lines[0].endswith("aEND")


def test_stopping_the_zygote_ends_its_children() -> None:
    zyg = Zygote(python.HANDLER, spares=1)
    session = zyg.session()
    session.run({"code": "result = 1"}, 10)
    assert zyg.pid is not None
    children = _children(zyg.pid)
    assert session.pid in children
    assert len(children) == 2  # the session's child and a spare

    zyg.stop()

    deadline = time.monotonic() + 2.0
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(_alive(pid) for pid in children)
    session.close()


def _children(pid: int) -> list[int]:
    deadline = time.monotonic() + 2.0
    while True:  # the spare is forked a few milliseconds after a session starts
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            found = [int(p) for p in fh.read().split()]
        if len(found) >= 2 or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_the_default_zygote_serves_a_bare_context() -> None:
    ctx = ToolContext()

    out = python.run({"code": "result = 'default'"}, ctx)
    session = ctx.resources[python.SESSION_KEY]
    python.close_resources(ctx)

    assert out["data"] == "default"
    assert session.closed
    assert python.SESSION_KEY not in ctx.resources
