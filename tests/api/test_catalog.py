"""Registering and reading playbooks over REST."""

from __future__ import annotations

from rest_framework.test import APIClient

from tests.api.conftest import playbook_yaml


def test_it_registers_yaml_and_returns_the_version(api: APIClient) -> None:
    response = api.post(
        "/api/catalog/",
        playbook_yaml("tests/api/yaml"),
        content_type="application/yaml",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["path"] == "tests/api/yaml" and body["version"] == 1
    assert body["created"] is True and len(body["digest"]) == 64


def test_it_registers_json_and_text_plain(api: APIClient) -> None:
    response = api.post(
        "/api/catalog/", {"content": playbook_yaml("tests/api/json")}, format="json"
    )
    assert response.status_code == 201 and response.json()["version"] == 1
    response = api.post(
        "/api/catalog/", playbook_yaml("tests/api/json", n=2), content_type="text/plain"
    )
    assert response.status_code == 201 and response.json()["version"] == 2


def test_it_returns_the_existing_version_for_identical_content(api: APIClient) -> None:
    text = playbook_yaml("tests/api/same")
    first = api.post("/api/catalog/", text, content_type="application/yaml")
    again = api.post("/api/catalog/", text, content_type="application/yaml")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["version"] == 1 and again.json()["created"] is False


def test_it_rejects_an_invalid_playbook_with_path_and_line(api: APIClient) -> None:
    text = (
        "apiVersion: noetl.io/v2\nkind: Playbook\n"
        "metadata: {name: bad, path: tests/api/bad}\n"
        "workflow:\n  - step: start\n    desc: no tool here\n"
    )
    response = api.post("/api/catalog/", text, content_type="application/yaml")
    assert response.status_code == 400
    issues = response.json()["issues"]
    assert issues and all({"path", "line", "message", "text"} <= set(i) for i in issues)
    assert any(i["path"].startswith("workflow[0]") and i["line"] == 5 for i in issues)


def test_it_reports_a_yaml_syntax_error_with_its_line(api: APIClient) -> None:
    response = api.post(
        "/api/catalog/",
        "kind: Playbook\nworkflow: [\n  - step: a\n",
        content_type="application/yaml",
    )
    assert response.status_code == 400
    assert any(issue["line"] for issue in response.json()["issues"])


def test_it_registers_python_with_a_syntax_error_and_warns_with_the_line(
    api: APIClient,
) -> None:
    text = playbook_yaml("tests/api/syntax", code="if n = 1: pass")

    response = api.post("/api/catalog/", text, content_type="application/yaml")

    assert response.status_code == 201
    [warning] = response.json()["warnings"]
    assert warning["path"] == "workflow[0].tool.code" and warning["line"] == 10
    assert warning["message"].startswith("step 'start': python syntax error")


def test_it_refuses_a_json_body_without_content(api: APIClient) -> None:
    response = api.post("/api/catalog/", {"yaml": "x"}, format="json")
    assert response.status_code == 400 and "content" in response.json()


def test_it_lists_the_latest_versions_filtered_by_prefix(api: APIClient) -> None:
    for path, n in [
        ("tests/a/one", 1),
        ("tests/a/one", 2),
        ("tests/a/two", 1),
        ("other/three", 1),
    ]:
        api.post("/api/catalog/", playbook_yaml(path, n=n), content_type="text/plain")
    body = api.get("/api/catalog/", {"path_prefix": "tests/a/"}).json()
    assert [(r["path"], r["version"]) for r in body["results"]] == [
        ("tests/a/one", 2),
        ("tests/a/two", 1),
    ]
    page = api.get("/api/catalog/", {"limit": 1}).json()
    assert page["results"][0]["path"] == "other/three"
    rest = api.get("/api/catalog/", {"after": page["next_after"]}).json()
    assert [r["path"] for r in rest["results"]] == ["tests/a/one", "tests/a/two"]


def test_it_reads_one_version_by_path(api: APIClient) -> None:
    for n in (1, 2):
        api.post(
            "/api/catalog/",
            playbook_yaml("tests/api/read", n=n),
            content_type="text/plain",
        )
    latest = api.get("/api/catalog/tests/api/read/").json()
    assert latest["version"] == 2 and "n: 2" in latest["content"]
    first = api.get("/api/catalog/tests/api/read/", {"version": 1}).json()
    assert first["version"] == 1 and "n: 1" in first["content"]
    assert api.get("/api/catalog/tests/api/read/", {"version": 9}).status_code == 404
    assert api.get("/api/catalog/tests/api/nothing/").status_code == 404


def test_it_lists_the_versions_of_a_path(api: APIClient) -> None:
    for n in (1, 2, 3):
        api.post(
            "/api/catalog/",
            playbook_yaml("tests/api/v", n=n),
            content_type="text/plain",
        )
    body = api.get("/api/catalog/tests/api/v/versions/").json()
    assert [r["version"] for r in body["results"]] == [3, 2, 1]


def test_it_still_reads_a_playbook_whose_path_ends_in_versions(api: APIClient) -> None:
    api.post(
        "/api/catalog/", playbook_yaml("tests/versions"), content_type="text/plain"
    )
    response = api.get("/api/catalog/tests/versions/")
    assert response.status_code == 200 and response.json()["path"] == "tests/versions"
