"""`papersift serve`: the HTTP JSON API through a real uvicorn on a loopback port, driven
with httpx, on tiny indexes with the fake encoder. Two servers are shared by the module:
`plain` (no token, no CORS) and `guarded` (a token, one CORS origin, query logging)."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from indexer.build import build_index
from indexer.errors import IndexCorrupt
from indexer.update import update_index
from search.engine import open_engine
from search.searcher import Filters
from tests.conftest import TOY, new_papers, write_jsonl
from tests.fakes import FakeEncoder
from ui.api import MAX_BODY, create_app
from ui.api_guard import host_of
from ui.cli_serve import allowed_hosts_for, is_loopback, log_config, make_server
from ui.settings import Settings

TOKEN = "k3Jx9-token-for-tests-0123456789"
ORIGIN = "https://ok.example"


@contextlib.contextmanager
def serving(app):
    """The app on a free loopback port in a thread; yields its base URL."""
    server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("api")
    build_index([write_jsonl(folder / "toy.jsonl", TOY)], folder / "index", FakeEncoder())
    return folder / "index"


@pytest.fixture(scope="module")
def plain(index):
    encoder = FakeEncoder()
    app = create_app(lambda: open_engine(index, encoder=encoder, warm=True),
                     Settings(index=index, lists=index.parent / "plain-lists.sqlite"))
    with serving(app) as url, httpx.Client(base_url=url, timeout=20) as client:
        yield SimpleNamespace(app=app, client=client, url=url, warm_calls=list(encoder.calls))


@pytest.fixture(scope="module")
def guarded(index):
    app = create_app(open_engine(index, encoder=FakeEncoder()),
                     Settings(index=index, lists=index.parent / "guarded-lists.sqlite"),
                     token=TOKEN, cors_origins=[ORIGIN], log_queries=True)
    with serving(app) as url, httpx.Client(base_url=url, timeout=20, headers={
            "authorization": f"Bearer {TOKEN}"}) as client:
        yield SimpleNamespace(app=app, client=client, url=url)


def error_of(response, status: int, field: str | None = None) -> str:
    """The one-line error of a refusal, checked for its status, shape and field."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) <= {"error", "field"} and body.get("field") == field, body
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


# ---------------------------------------------------------------- reading routes


def test_the_openapi_schema_lists_exactly_these_routes_and_parameters(plain):
    schema = plain.client.get("/openapi.json").json()
    found = {}
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            ref = body.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
            fields = sorted(schema["components"]["schemas"][ref]["properties"]) if ref else []
            found[f"{method.upper()} {path}"] = sorted(p["name"] for p in op.get("parameters", [])) + fields
    assert found == {
        "GET /health": [],
        "GET /v1/search": ["as_typed", "author", "category", "k", "mode", "no_floor", "q", "since",
                           "sort", "until"],
        "GET /v1/papers/{paper_id}/similar": ["category", "k", "paper_id", "since", "sort", "until"],
        "GET /v1/papers/{paper_id}": ["paper_id"],
        "POST /v1/recommend": ["category", "k", "like", "method", "since", "sort", "unlike", "until"],
        "GET /v1/info": [],
        "GET /v1/lists": [],
        "POST /v1/lists": ["name"],
        "GET /v1/lists/{name}": ["name"],
        "POST /v1/lists/{name}/papers": ["name", "ids"],
        "DELETE /v1/lists/{name}/papers/{paper_id}": ["name", "paper_id"],
    }
    errors = schema["paths"]["/v1/search"]["get"]["responses"]["422"]["content"]["application/json"]
    assert errors["schema"]["$ref"].endswith("/ErrorBody")  # not FastAPI's {"detail": [...]}
    assert plain.client.get("/docs").status_code == 200


def test_the_engine_is_warm_before_the_server_answers_and_health_says_what_it_serves(plain, index):
    assert plain.warm_calls == [1]  # the warm-up encode ran in the lifespan, before "started"
    body = plain.client.get("/health").json()
    engine = plain.app.state.engine
    assert body == {"ok": True, "generation": engine.generation.name, "papers": len(TOY),
                    "problem": None}


def test_search_answers_as_search_queries_json_does(plain, index, run, tmp_path):
    body = plain.client.get("/v1/search", params={"q": "diffusion image generation", "k": 3}).json()
    assert set(body) == {"query", "took_ms", "corrected", "no_close_matches", "hits"}
    questions = tmp_path / "q.txt"
    questions.write_text("diffusion image generation\n")
    code, out, err = run("search", "--queries", questions, "--json", "-k", 3, "--index", index)
    assert code == 0, err
    cli = json.loads(out)  # the CLI's line, through the same fake encoder
    assert {**body, "took_ms": None} == {**cli, "took_ms": None} and body["took_ms"] >= 0
    assert body["hits"][0]["id"] in ("2401.00002", "2401.00005")


def test_search_filters_and_options(plain):
    def ids(**params):
        return [h["id"] for h in plain.client.get(
            "/v1/search", params={"q": "diffusion networks", "no_floor": True, **params}).json()["hits"]]

    assert set(ids(category="cs.cv")) == {"2401.00002", "2401.00005"}  # spelt as the index does
    assert set(ids(category=["cs.CL", "q-bio.BM"])) == {"2401.00001", "2401.00003", "2401.00004"}
    assert ids(since="2024-03-01", until="2024-04-30", mode="dense") in (
        ["2401.00003", "2401.00004"], ["2401.00004", "2401.00003"])
    assert ids(author="hopper") == ["2401.00002"]
    assert ids(sort="newest") == ["2401.00005", "2401.00004", "2401.00003", "2401.00002", "2401.00001"]
    assert len(ids(mode="bm25")) >= 2
    typo = plain.client.get("/v1/search", params={"q": "difusion"}).json()
    as_typed = plain.client.get("/v1/search", params={"q": "difusion", "as_typed": True}).json()
    assert typo["corrected"] == "diffusion" and as_typed["corrected"] is None


@pytest.mark.parametrize(("params", "field", "words"), [
    ({"q": "   "}, "q", "empty query"),
    ({}, "q", "Field required"),
    ({"q": "x" * 2001}, "q", "2000 characters"),
    ({"q": "x", "k": 0}, "k", "greater than or equal to 1"),
    ({"q": "x", "k": 1001}, "k", "less than or equal to 1000"),
    ({"q": "x", "k": "ten"}, "k", "valid integer"),
    ({"q": "x", "mode": "semantic"}, "mode", "'hybrid', 'dense' or 'bm25'"),
    ({"q": "x", "sort": "oldest"}, "sort", "'relevance', 'newest' or 'upvotes'"),
    ({"q": "x", "since": "2024-02-30"}, "since", "YYYY-MM-DD"),
    ({"q": "x", "until": "yesterday"}, "until", "YYYY-MM-DD"),
    ({"q": "x", "since": "2024-05-01", "until": "2024-01-01"}, "since", "is after until"),
    ({"q": "x", "category": "cs.CX"}, "category", "closest: cs.CV"),
    ({"q": "x", "author": "!?"}, "author", "no letters"),
    ({"q": "x", "categroy": "cs.CL"}, "categroy", "unknown parameter"),
])
def test_bad_search_parameters_are_422_naming_the_field(plain, params, field, words):
    assert words in error_of(plain.client.get("/v1/search", params=params), 422, field)


def test_a_paper_by_any_form_of_its_id_with_its_abstract(plain):
    for given in ("2401.00003", "2401.00003v2", "https://arxiv.org/abs/2401.00003v1", "arXiv:2401.00003"):
        record = plain.client.get(f"/v1/papers/{given}").json()
        assert record["id"] == "2401.00003" and record["upvotes"] == 12
        assert record["abstract"].startswith("Dense retrieval of passages")
        assert set(record) == {"id", "title", "abstract", "authors", "categories", "primary_category",
                               "published", "url", "upvotes", "num_comments", "keywords", "version"}
    assert "9999.00001" in error_of(plain.client.get("/v1/papers/9999.00001"), 404)
    assert "no route" in error_of(plain.client.get("/v2/search"), 404)


def test_similar_lists_related_work_without_the_paper(plain):
    body = plain.client.get("/v1/papers/2401.00002/similar", params={"k": 2}).json()
    assert body["paper"]["id"] == "2401.00002" and len(body["hits"]) == 2
    assert body["hits"][0]["id"] == "2401.00005" and "2401.00002" not in {h["id"] for h in body["hits"]}
    only_cl = plain.client.get("/v1/papers/2401.00002/similar", params={"category": "cs.cl"}).json()
    assert [h["id"] for h in only_cl["hits"]] == ["2401.00003"]
    error_of(plain.client.get("/v1/papers/9999.00001/similar"), 404)
    error_of(plain.client.get("/v1/papers/2401.00002/similar", params={"k": 0}), 422, "k")


def test_recommend_from_liked_and_unliked_papers(plain):
    body = plain.client.post("/v1/recommend", json={"like": ["2401.00002"], "unlike": ["2401.00001"],
                                                    "k": 3}).json()
    assert set(body) == {"took_ms", "hits"}
    ids = [h["id"] for h in body["hits"]]
    assert ids[0] == "2401.00005" and not {"2401.00001", "2401.00002"} & set(ids)
    svm = plain.client.post("/v1/recommend", json={"like": ["2401.00002"], "method": "svm",
                                                   "category": ["cs.CV"]}).json()
    assert [h["id"] for h in svm["hits"]] == ["2401.00005"]
    post = plain.client.post
    error_of(post("/v1/recommend", json={"like": ["9999.00001"]}), 404)
    assert "both liked and unliked" in error_of(
        post("/v1/recommend", json={"like": ["2401.00002"], "unlike": ["2401.00002"]}), 422)
    error_of(post("/v1/recommend", json={"like": []}), 422, "like")
    error_of(post("/v1/recommend", json={"like": ["2401.00002"] * 1001}), 422, "like")
    error_of(post("/v1/recommend", json={"like": ["2401.00002"], "k": 5000}), 422, "k")
    error_of(post("/v1/recommend", json={"like": ["2401.00002"], "method": "knn"}), 422, "method")
    error_of(post("/v1/recommend", json={"like": ["2401.00002"], "since": "2024-1-1"}), 422, "since")
    error_of(post("/v1/recommend", json={"liked": ["2401.00002"]}), 422, "like")
    assert "not valid JSON" in error_of(post("/v1/recommend", content=b"{like:",
                                             headers={"content-type": "application/json"}), 400)
    error_of(post("/v1/recommend"), 422, "body")
    error_of(plain.client.get("/v1/recommend"), 405)


def test_info_describes_the_served_index(plain, index):
    body = plain.client.get("/v1/info").json()
    assert body["papers"] == len(TOY) and body["index"] == str(index)
    assert body["generation"] == plain.app.state.engine.generation.name
    assert body["published"] == {"first": "2024-01-02", "last": "2024-05-05"}
    assert body["model"]["name"] == "fake/bag-of-words" and body["problem"] is None
    assert {"name": "cs.LG", "papers": 2} in body["categories"] and len(body["categories"]) == 4
    assert body["build"]["windows"] is not None and body["map"] is None


# ---------------------------------------------------------------- reading lists, token


def test_without_a_token_lists_are_read_only(plain):
    assert plain.client.get("/v1/lists").json() == {"lists": []}
    error_of(plain.client.get("/v1/lists/thesis"), 404)
    for response in (plain.client.post("/v1/lists", json={"name": "thesis"}),
                     plain.client.post("/v1/lists/thesis/papers", json={"ids": ["2401.00001"]}),
                     plain.client.delete("/v1/lists/thesis/papers/2401.00001")):
        assert "--token-file" in error_of(response, 403)
    assert plain.client.get("/v1/lists").json() == {"lists": []}


def test_lists_are_made_filled_read_and_emptied_with_the_token(guarded):
    c = guarded.client
    assert c.post("/v1/lists", json={"name": "ML/NLP"}).status_code == 201
    assert "exists already" in error_of(c.post("/v1/lists", json={"name": "ML/NLP"}), 409, "name")
    for bad in ("   ", "x" * 81, "bell\x07"):
        error_of(c.post("/v1/lists", json={"name": bad}), 422, "name")
    added = c.post("/v1/lists/ML/NLP/papers", json={"ids": ["2401.00003", "arXiv:2401.00001v2"]})
    assert added.json() == {"name": "ML/NLP", "added": 2, "present": 0}
    again = c.post("/v1/lists/ML/NLP/papers", json={"ids": ["2401.00003"]}).json()
    assert again == {"name": "ML/NLP", "added": 0, "present": 1}
    error_of(c.post("/v1/lists/ML/NLP/papers", json={"ids": ["2401.00004", "9999.00001"]}), 404)
    error_of(c.post("/v1/lists/ML/NLP/papers", json={"ids": []}), 422, "ids")
    items = c.get("/v1/lists/ML/NLP").json()
    assert [p["id"] for p in items["papers"]] == ["2401.00003", "2401.00001"]  # nothing of the 404
    assert set(items["papers"][0]) == {"id", "title", "authors", "published", "added"}
    assert c.get("/v1/lists").json()["lists"][0]["papers"] == 2
    assert c.delete("/v1/lists/ML/NLP/papers/2401.00003").json() == {"name": "ML/NLP", "removed": 1}
    error_of(c.delete("/v1/lists/ML/NLP/papers/2401.00003"), 404)
    error_of(c.delete("/v1/lists/nothing/papers/2401.00003"), 404)
    created = c.post("/v1/lists/made on first use/papers", json={"ids": ["2401.00005"]}).json()
    assert created["added"] == 1 and {rl["name"] for rl in c.get("/v1/lists").json()["lists"]} == {
        "ML/NLP", "made on first use"}


def test_a_token_guards_every_route_but_health(guarded):
    with httpx.Client(base_url=guarded.url, timeout=20) as anyone:
        for path in ("/v1/search?q=diffusion", "/v1/info", "/v1/lists", "/docs", "/openapi.json"):
            response = anyone.get(path)
            assert "Authorization: Bearer" in error_of(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
        wrong = anyone.get("/v1/info", headers={"authorization": f"Bearer {TOKEN[:-1]}x"})
        assert error_of(wrong, 401) == "wrong bearer token"
        assert "invalid_token" in wrong.headers["www-authenticate"]
        error_of(anyone.get("/v1/info", headers={"authorization": f"Basic {TOKEN}"}), 401)
        error_of(anyone.post("/v1/lists", json={"name": "x"}), 401)
        assert anyone.get("/health").json()["ok"] is True
        assert anyone.get("/v1/info", headers={"authorization": f"bearer {TOKEN}"}).status_code == 200
    assert guarded.client.get("/v1/search", params={"q": "diffusion"}).status_code == 200


def test_the_host_header_must_name_the_server(plain, guarded):
    port = plain.url.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.nip.io"):
        assert "does not name this server" in error_of(
            plain.client.get("/health", headers={"host": host}), 400)
    error_of(guarded.client.get("/v1/info", headers={"host": "evil.example"}), 400)
    for host in (f"localhost:{port}", "127.0.0.1", "LOCALHOST"):
        assert plain.client.get("/health", headers={"host": host}).status_code == 200


def test_cors_only_for_the_origins_given(plain, guarded):
    assert "access-control-allow-origin" not in plain.client.get(
        "/health", headers={"origin": ORIGIN}).headers
    allowed = guarded.client.get("/v1/info", headers={"origin": ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    other = guarded.client.get("/v1/info", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    with httpx.Client(base_url=guarded.url, timeout=20) as browser:  # a preflight carries no token
        preflight = browser.options("/v1/recommend", headers={
            "origin": ORIGIN, "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        refused = browser.options("/v1/recommend", headers={
            "origin": "https://evil.example", "access-control-request-method": "POST"})
        assert refused.status_code == 400


def test_a_body_over_the_limit_is_413_by_length_or_as_it_streams(guarded):
    post = guarded.client.post
    too_big = b'{"name": "' + b"x" * MAX_BODY + b'"}'
    assert "1,048,576 bytes" in error_of(post("/v1/lists", content=too_big), 413)

    def chunks():  # no Content-Length: Transfer-Encoding: chunked
        for _ in range(MAX_BODY // 50_000 + 2):
            yield b" " * 50_000

    error_of(post("/v1/recommend", content=chunks(), headers={"content-type": "application/json"}), 413)
    small = post("/v1/recommend", content=iter([b'{"like": ', b'["2401.00002"]}']),
                 headers={"content-type": "application/json"})
    assert small.status_code == 200 and small.json()["hits"]


def test_unexpected_failures_are_one_json_line_and_a_logged_traceback(plain, monkeypatch, caplog):
    from search.lists import ReadingLists

    def broken(error):
        def lists(self):
            raise error
        return lists

    monkeypatch.setattr(ReadingLists, "lists", broken(RuntimeError("disk on fire")))
    with caplog.at_level(logging.INFO, logger="papersift.api"):
        assert error_of(plain.client.get("/v1/lists"), 500) == "internal error"
    assert "disk on fire" in caplog.text and "Traceback" in caplog.text
    monkeypatch.setattr(ReadingLists, "lists", broken(IndexCorrupt("lists.sqlite: damaged")))
    assert "damaged" in error_of(plain.client.get("/v1/lists"), 503)


def test_the_access_log_has_no_query_text_unless_asked(plain, guarded, caplog):
    def lines():
        return [r.getMessage() for r in caplog.records if r.name == "papersift.api"]

    with caplog.at_level(logging.INFO, logger="papersift.api"):
        plain.client.get("/v1/search", params={"q": "secret plans", "k": 2})
        guarded.client.get("/v1/search", params={"q": "logged words"})
        deadline = time.monotonic() + 5
        while len(lines()) < 2:  # each line is written once its answer has gone out
            assert time.monotonic() < deadline
            time.sleep(0.01)
    # lines of earlier tests' requests may still arrive: every plain one is path-only
    plain = [line for line in lines() if line.startswith("GET /v1/search ")]
    assert plain and all(line.startswith("GET /v1/search 200 ") and line.endswith(" ms")
                         for line in plain)
    assert "secret" not in caplog.text and "k=2" not in caplog.text
    assert any(line.startswith("GET /v1/search?q=logged+words 200 ") for line in lines())


def test_added_apps_and_routes_sit_behind_the_guards_and_share_the_lifespan(index):
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    events = []

    @contextlib.asynccontextmanager
    async def sub_lifespan(app):
        events.append("sub up")
        yield
        events.append("sub down")

    @contextlib.asynccontextmanager
    async def extra(app):
        events.append(f"extra up, {app.state.engine.searcher().count} papers")
        yield
        events.append("extra down")

    async def ping(request):
        return PlainTextResponse("pong")

    sub = Starlette(routes=[Route("/ping", ping)], lifespan=sub_lifespan)
    app = create_app(lambda: open_engine(index, encoder=FakeEncoder()), Settings(index=index),
                     token=TOKEN, extra_mounts={"/sub": sub}, extra_routes=[Route("/mcp", ping)],
                     extra_lifespans=[extra])
    with serving(app) as url:
        assert events == ["sub up", f"extra up, {len(TOY)} papers"]
        for path in ("/sub/ping", "/mcp"):
            error_of(httpx.get(url + path), 401)
            error_of(httpx.get(url + path, headers={"host": "evil.example"}), 400)
            assert httpx.get(url + path, headers={"authorization": f"Bearer {TOKEN}"}).text == "pong"
    assert events[2:] == ["extra down", "sub down"]


# ---------------------------------------------------------------- concurrency, updates


class SlowEncoder(FakeEncoder):
    def encode(self, texts):
        time.sleep(0.25)
        return super().encode(texts)


def test_searches_from_several_clients_run_at_the_same_time(plain, monkeypatch):
    searcher = plain.app.state.engine.searcher()
    monkeypatch.setattr(searcher, "encoder", SlowEncoder())
    answers = []

    def ask(i):
        answers.append(plain.client.get("/v1/search", params={"q": f"diffusion {i}"}).status_code)

    started = time.perf_counter()
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200] * 4
    assert time.perf_counter() - started < 0.75  # one after another: 1.0 s


def test_searches_during_three_updates_never_fail_and_find_the_new_papers(toy_index, tmp_path):
    encoder = FakeEncoder()
    app = create_app(open_engine(toy_index, encoder=encoder), Settings(index=toy_index))
    failures, statuses, stop = [], [], threading.Event()
    with serving(app) as url:
        first = httpx.get(f"{url}/health").json()["generation"]

        def client():
            with httpx.Client(base_url=url, timeout=20) as c:
                while not stop.is_set():
                    try:
                        r = c.get("/v1/search", params={"q": "quasar lensing survey", "k": 20})
                        statuses.append(r.status_code)
                        if r.status_code != 200 or len(r.json()["hits"]) < 1:
                            failures.append(r.text)
                    except httpx.HTTPError as e:
                        failures.append(repr(e))

        thread = threading.Thread(target=client)
        thread.start()
        try:
            for batch in range(3):
                time.sleep(0.05)
                update_index([new_papers(tmp_path, batch)], toy_index, encoder)
            time.sleep(0.05)
        finally:
            stop.set()
            thread.join()
        hits = httpx.get(f"{url}/v1/search", params={"q": "quasar lensing survey", "k": 9}).json()["hits"]
        health = httpx.get(f"{url}/health").json()
    assert failures == [] and len(statuses) > 10
    assert {h["id"] for h in hits} == {f"2450.{b:02d}{i:03d}" for b in range(3) for i in range(3)}
    assert health["papers"] == len(TOY) + 9 and health["generation"] != first and health["ok"]


# ---------------------------------------------------------------- the command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def token_file(folder: Path, text: str = TOKEN, mode: int = 0o600) -> Path:
    path = folder / f"token-{len(list(folder.glob('token-*')))}"
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def test_serve_refuses_before_starting(run, toy_index, tmp_path):
    cases = [
        (["--host", "0.0.0.0"], 2, "--host 0.0.0.0 lets other machines connect: give --token-file"),
        (["--host", "192.0.2.1"], 2, "--token-file"),
        (["--token-file", token_file(tmp_path, "   ")], 2, "is empty"),
        (["--token-file", token_file(tmp_path, mode=0o644)], 2, "can be read by other users"),
        (["--token-file", token_file(tmp_path, "short")], 2, "at least 16"),
        (["--token-file", tmp_path / "missing"], 2, "cannot read it"),
        (["--token-file", "/dev/zero"], 2, "not a small regular file"),
        (["--cors-origin", "https://ok.example/path"], 2, "--cors-origin must be"),
        (["--port", "70000"], 1, "--port must be between 1 and 65535"),
        (["--index", tmp_path / "nothing"], 1, "nothing"),
    ]
    for args, code, words in cases:
        exit_code, out, err = run("serve", "--index", toy_index, "--port", free_port(), *args)
        assert (exit_code, out) == (code, ""), err
        assert words in err and len(err.strip().splitlines()) == 1, err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        exit_code, _, err = run("serve", "--index", toy_index, "--port", port)
    assert exit_code == 1 and f"port {port} on 127.0.0.1 is in use" in err


def test_serve_exits_1_when_the_index_fails_to_open_at_start(run, toy_index):
    """The engine opens in the lifespan; a damaged index there is exit 1, not 0 (a
    script or a service manager must see the server did not start)."""
    faiss_file = next(toy_index.glob("gen-*/faiss.index"))
    with faiss_file.open("r+b") as f:
        f.truncate(100)
    exit_code, out, err = run("serve", "--index", toy_index, "--port", free_port())
    assert exit_code == 1 and out == "" and "faiss.index" in err


def test_serve_opens_a_warm_engine_and_answers_with_its_token(toy_index, tmp_path, monkeypatch):
    import search.engine
    from ui import cli_serve
    from ui.cli import main

    opened, servers = [], []
    real_open, real_server = search.engine.open_engine, cli_serve.make_server

    def fake_open(index, model=None, **options):
        opened.append(options)
        return real_open(index, model, **{**options, "encoder": FakeEncoder()})

    monkeypatch.setattr(search.engine, "open_engine", fake_open)
    monkeypatch.setattr(cli_serve, "make_server", lambda *a, **k: servers.append(
        real_server(*a[:3])) or servers[-1])  # the test's logging left as it is
    port, codes = free_port(), []
    thread = threading.Thread(target=lambda: codes.append(main([
        "serve", "--index", str(toy_index), "--port", str(port), "--lists", str(tmp_path / "l.sqlite"),
        "--token-file", str(token_file(tmp_path)), "--allowed-host", "papers.example"])))
    thread.start()
    deadline = time.monotonic() + 20
    while not (servers and servers[0].started):
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    try:
        assert [o["warm"] for o in opened] == [True]
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/v1/info").status_code == 401
        auth = {"authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{url}/v1/info", headers=auth).json()["papers"] == len(TOY)
        assert httpx.get(f"{url}/health", headers={"host": "papers.example"}).status_code == 200
        assert httpx.post(f"{url}/v1/lists", json={"name": "a"}, headers=auth).status_code == 201
    finally:
        servers[0].should_exit = True
        thread.join(10)
    assert codes == [0]


def test_bind_addresses_decide_the_host_names_answered():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1") and not is_loopback("a.example")
    assert allowed_hosts_for("127.0.0.1") == ["127.0.0.1", "localhost"]
    assert allowed_hosts_for("192.0.2.1", ["Papers.example"]) == ["192.0.2.1", "papers.example"]
    wildcard = allowed_hosts_for("0.0.0.0")
    assert "0.0.0.0" not in wildcard and {"127.0.0.1", "localhost", socket.gethostname().lower()} <= set(
        wildcard)
    assert [host_of(h) for h in ("[::1]:8000", "LocalHost:80", "::1", "a.example")] == [
        "::1", "localhost", "::1", "a.example"]
    server = make_server(create_app(open_engine, Settings(index=Path("x"))), "127.0.0.1", 8000,
                         log_config())
    assert server.config.access_log is False
    assert server.config.log_config["loggers"]["papersift.api"]["level"] == "INFO"


def test_filters_reach_the_searcher_as_the_cli_builds_them(plain):
    """The API's filters and the CLI's agree: same categories spelling, same rows."""
    searcher = plain.app.state.engine.searcher()
    cli = searcher.query("diffusion", 5, Filters(categories=("cs.CV",)), floor=False).to_dict()
    api = plain.client.get("/v1/search", params={"q": "diffusion", "k": 5, "category": "CS.cv",
                                                 "no_floor": True}).json()
    assert {**api, "took_ms": None} == cli


def _mcp_session(url: str, token: str | None):
    """The MCP tools served at /mcp of the running API, through the SDK's own client."""
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def main():
        headers = {"authorization": f"Bearer {token}"} if token else {}
        async with httpx2.AsyncClient(headers=headers, timeout=20) as http, Client(
                streamable_http_client(f"{url}/mcp", http_client=http)) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            found = await client.call_tool("search_papers", {"query": "protein folding", "k": 3})
            missing = await client.call_tool("get_paper", {"paper_id": "2401.99999"})
        return names, found, missing

    return anyio.run(main)


def test_serve_answers_the_mcp_tools_at_mcp_from_the_same_engine(plain, guarded):
    names, found, missing = _mcp_session(plain.url, None)
    assert {"search_papers", "get_paper", "similar_papers", "recommend_papers"} <= names
    expected = plain.client.get("/v1/search", params={"q": "protein folding", "k": 3}).json()
    assert [h["id"] for h in found.structured_content["hits"]] == [h["id"] for h in expected["hits"]]
    assert missing.is_error and "2401.99999" in missing.content[0].text
    # behind the same guards: no token, no tools; the token opens them
    refused = httpx.post(f"{guarded.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert refused.status_code == 401
    assert "search_papers" in _mcp_session(guarded.url, TOKEN)[0]
    foreign = guarded.client.post("/mcp", json={}, headers={"Host": "evil.example"})
    assert foreign.status_code == 400


def test_reading_lists_are_read_without_creating_and_store_failures_are_503(index, tmp_path):
    lists = tmp_path / "none" / "lists.sqlite"
    app = create_app(open_engine(index, encoder=FakeEncoder()), Settings(index=index, lists=lists),
                     token=TOKEN, mcp=False)
    headers = {"authorization": f"Bearer {TOKEN}"}
    with serving(app) as url, httpx.Client(base_url=url, timeout=20, headers=headers) as client:
        assert client.get("/v1/lists").json() == {"lists": []}
        error_of(client.get("/v1/lists/reading"), 404)
        assert not lists.parent.exists()  # reading created nothing
        lists.parent.mkdir()
        lists.write_bytes(b"not a database" * 100)  # damaged: the server's problem, not yours
        error_of(client.get("/v1/lists"), 503)
        error_of(client.post("/v1/lists", json={"name": "new"}), 503)


def test_mcp_takes_the_hosts_the_api_takes(plain):
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"accept": "application/json, text/event-stream"}
    for host in ("localhost", "127.0.0.1", "LOCALHOST:1"):
        r = plain.client.post("/mcp", json=ping, headers={**headers, "host": host})
        assert r.status_code == 200, (host, r.text)
    assert plain.client.post("/mcp", json=ping, headers={**headers, "host": "evil.example"}
                             ).status_code == 400


def test_an_error_echoes_at_most_a_few_hundred_characters(plain):
    message = error_of(plain.client.get(f"/v1/papers/{'9' * 60_000}"), 404)
    assert len(message) <= 500
