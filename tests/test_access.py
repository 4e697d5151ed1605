"""Who can reach the web app, and whose conversation an answer belongs to.

Real ``ipqa serve`` subprocesses on 127.0.0.1 over the bundled knowledge base (built once):
with ``--auth`` every page, API call and file route needs the login, and the password never reaches
the server's output; without it the app listens on 127.0.0.1 only. Users talking at the same time
(gradio_client clients, browser sessions) each get follow-ups read against their own history.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.servers import ROOT, serve
from tests.test_ui import _ask, browser  # noqa: F401  (browser is a fixture)
from ui.loadtest import conversation_pool

USER, PASSWORD = "user", "Pw-7q2Zx9"  # a password no log line contains by chance


@pytest.fixture(scope="module")
def index_copy(real_index, tmp_path_factory):
    """A copy of the bundled index for servers that change it."""
    copy = tmp_path_factory.mktemp("access-index") / "index"
    shutil.copytree(real_index[0], copy)
    return copy


@pytest.fixture(scope="module")
def auth_server(index_copy, tmp_path_factory):
    with serve(tmp_path_factory.mktemp("auth"), index_dir=index_copy, args=["--auth", f"{USER}:{PASSWORD}"]) as srv:
        yield srv


@pytest.fixture(scope="module")
def open_server(real_index, tmp_path_factory):
    with serve(tmp_path_factory.mktemp("open"), index_dir=real_index[0]) as srv:
        yield srv


def _get(url: str, cookie: str | None = None, data: bytes | None = None, content_type: str | None = None):
    """(status, body) of a request; an HTTP error status is returned, not raised."""
    req = urllib.request.Request(url, data=data)
    if cookie:
        req.add_header("Cookie", cookie)
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", errors="replace")


def _login(url: str, user: str, password: str) -> str | None:
    """The session cookie from the login form, or None if the login is refused."""
    data = urllib.parse.urlencode({"username": user, "password": password}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/login", data=data), timeout=30) as r:
            cookies = r.headers.get_all("Set-Cookie") or []
    except urllib.error.HTTPError:
        return None
    return "; ".join(c.split(";", 1)[0] for c in cookies) or None


# --- with --auth: nothing without the login ----------------------------------------------------


@pytest.mark.slow
def test_pages_and_routes_need_the_login(auth_server):
    url = auth_server["url"]
    exported = auth_server["data"] / "exports" / "search-test.csv"
    exported.parent.mkdir(parents=True, exist_ok=True)
    exported.write_text("排名,得分\n1,0.9\n", encoding="utf-8")
    file_url = f"{url}/gradio_api/file={exported}"

    status, page = _get(url + "/")
    assert status == 200 and "<h1>请登录</h1>" in page  # a login page that says nothing else
    for secret in ("荆门高新区对通过贯标认证的企业有奖励吗", "ipqa-question", "add_documents", "remove_documents",
                   "api_name", "dependencies", "知识产权", "gradio"):
        assert secret not in page, secret
    for path in ("/config", "/gradio_api/info", "/gradio_api/openapi.json", "/gradio_api/queue/data", "/info",
                 "/theme.css", "/assets/index.js", "/manifest.json", "/favicon.ico"):
        status, body = _get(url + path)
        assert status == 401 and json.loads(body) == {"detail": "请登录"}, path
    for path in ("/gradio_api/reset", "/gradio_api/cancel", "/gradio_api/queue/close", "/logout"):
        assert _get(url + path, data=b'{"event_id": "x", "session_hash": "x", "fn_index": 0}',
                    content_type="application/json")[0] == 401, path
    assert _get(file_url)[0] in (401, 403)
    ask = json.dumps({"data": ["专利法第四十二条", [], "", "", ""]}).encode()
    for endpoint in ("ask", "search", "add_documents", "remove_documents"):
        assert _get(f"{url}/gradio_api/call/{endpoint}", data=ask, content_type="application/json")[0] == 401
    assert _get(url + "/gradio_api/queue/join", data=b'{"fn_index": 0, "data": [], "session_hash": "x"}',
                content_type="application/json")[0] == 401
    boundary = "ipqa"
    upload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.md\"\r\n\r\n# a\r\n"
              f"--{boundary}--\r\n").encode()
    assert _get(url + "/gradio_api/upload", data=upload, content_type=f"multipart/form-data; boundary={boundary}")[0] \
        == 401

    assert _login(url, USER, "wrong-" + PASSWORD) is None
    cookie = _login(url, USER, PASSWORD)
    assert cookie
    status, page = _get(url + "/", cookie)
    assert status == 200 and "荆门高新区对通过贯标认证的企业有奖励吗" in page and "<h1>请登录</h1>" not in page
    assert _get(url + "/config", cookie)[0] == 200
    assert _get(url + "/gradio_api/info", cookie)[0] == 200
    status, body = _get(file_url, cookie)
    assert status == 200 and "排名,得分" in body


@pytest.mark.slow
def test_gradio_client_needs_the_login(auth_server):
    from gradio_client import Client

    with pytest.raises(Exception):
        Client(auth_server["url"], verbose=False)
    with pytest.raises(Exception):
        Client(auth_server["url"], auth=(USER, "wrong-" + PASSWORD), verbose=False)
    client = Client(auth_server["url"], auth=(USER, PASSWORD), verbose=False)
    answer = client.predict("湖北省2023年知识产权质押融资目标是多少？", [], "", "", "", api_name="/ask")
    assert answer["citations"][0]["doc_id"] == "hubei-2023"
    hits = client.predict("质押融资", "沧州", "", "", None, None, "hybrid", 3, api_name="/search")["hits"]
    assert hits and all(h["doc_id"] == "cangzhou-2017" for h in hits)


@pytest.mark.slow
def test_document_api_keeps_uploads_in_the_app_folder(auth_server, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(auth_server["url"], auth=(USER, PASSWORD), verbose=False)
    outside = tmp_path / "not-uploaded.md"
    outside.write_text("# 不该被读取的文件\n\n第一条 本机上的文件不经上传不得加入知识库。\n", encoding="utf-8")
    with pytest.raises(AppError, match="handle_file"):  # a path the request names is not read
        client.predict([str(outside)], api_name="/add_documents")

    doc = tmp_path / "upload" / "访问测试文件.md"
    doc.parent.mkdir()
    doc.write_text("# 访问测试文件\n\n第一条 通过接口加入的文件保存在应用自己的上传目录。\n", encoding="utf-8")
    added = client.predict([handle_file(str(doc))], api_name="/add_documents")
    assert added["ok"] and added["added"] == ["访问测试文件"] and added["updated"] == []
    assert (auth_server["data"] / "uploads" / "访问测试文件.md").is_file()
    hits = client.predict("上传目录", "", "访问测试文件", "", None, None, "hybrid", 3, api_name="/search")["hits"]
    assert hits and hits[0]["doc_id"] == "访问测试文件"
    removed = client.predict(["访问测试文件"], api_name="/remove_documents")
    assert removed["ok"] and removed["removed"] == ["访问测试文件"]
    assert not client.predict(["访问测试文件"], api_name="/remove_documents")["ok"]  # gone


@pytest.mark.slow
def test_the_password_is_not_logged(auth_server):
    from gradio_client import Client

    Client(auth_server["url"], auth=(USER, PASSWORD), verbose=False).predict("专利法第四十二条", [], "", "", "",
                                                                             api_name="/ask")
    _login(auth_server["url"], USER, "wrong-" + PASSWORD)
    log = auth_server["log"].read_text(errors="replace")
    assert "个文件已就绪" in log  # the log is the server's output
    assert PASSWORD not in log


def _login_status(url: str, user: str, password: str) -> tuple[int, str]:
    data = urllib.parse.urlencode({"username": user, "password": password}).encode()
    return _get(url + "/login", data=data, content_type="application/x-www-form-urlencoded")


@pytest.mark.slow
def test_wrong_passwords_are_throttled_then_locked_out(index_copy, tmp_path):
    with serve(tmp_path / "throttle", index_dir=index_copy, args=["--auth", f"{USER}:{PASSWORD}"],
               env={"IPQA_LOGIN_LOCKOUT_SECONDS": "6"}) as srv:
        url = srv["url"]
        started = time.monotonic()
        answers = [_login_status(url, USER, f"guess-{i}") for i in range(200)]
        elapsed = time.monotonic() - started
        statuses = [status for status, _ in answers]
        assert statuses[:5] == [400] * 5 and set(statuses[5:]) == {429}, statuses[:8]
        assert "登录失败次数过多，请 1 分钟后再试" in answers[-1][1]
        assert elapsed > 0.3 + 0.6 + 0.9 + 1.2  # each failure answered later than the one before
        assert _login_status(url, USER, PASSWORD)[0] == 429  # locked out: even the right password waits
        time.sleep(6.5)
        assert _login(url, USER, PASSWORD)  # the lock-out ends
        log = srv["log"].read_text(errors="replace")
        assert "failed login from 127.0.0.1 for user 'user' (1 of 5 allowed)" in log
        assert "login locked out for 127.0.0.1: 5 failed logins" in log
        assert PASSWORD not in log and "guess-" not in log


@pytest.mark.slow
def test_each_app_keeps_its_uploads_to_itself(auth_server, index_copy, tmp_path):
    """Two apps on one machine: a file uploaded to one is in that app's own temporary folder, and a
    logged-in user of the other cannot read it through the other's file route."""
    with serve(tmp_path / "other", index_dir=index_copy, args=["--auth", f"{USER}:{PASSWORD}"]) as other:
        cookie_a, cookie_b = _login(auth_server["url"], USER, PASSWORD), _login(other["url"], USER, PASSWORD)
        boundary = "ipqa"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"秘密.md\"\r\n\r\n"
                "# 只给本应用的用户看\r\n".encode() + f"\r\n--{boundary}--\r\n".encode())
        status, listing = _get(auth_server["url"] + "/gradio_api/upload", cookie_a, data=body,
                               content_type=f"multipart/form-data; boundary={boundary}")
        assert status == 200, listing
        stored = Path(json.loads(listing)[0])
        assert stored.resolve().is_relative_to((auth_server["data"] / "tmp").resolve())
        assert not stored.resolve().is_relative_to(Path("/tmp/gradio"))
        route = f"/gradio_api/file={urllib.parse.quote(str(stored))}"
        assert _get(auth_server["url"] + route, cookie_a) == (200, "# 只给本应用的用户看\r\n")
        assert _get(other["url"] + route, cookie_b)[0] in (403, 404)


def test_serving_beyond_this_machine_needs_a_login(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "IPQA_AUTH"}
    result = subprocess.run([sys.executable, "-m", "cli", "serve", "--host", "0.0.0.0", "--index-dir",
                             str(tmp_path / "index"), "--data-dir", str(tmp_path / "data")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2
    assert "不能在 0.0.0.0 上对其他机器开放" in result.stderr and "--auth" in result.stderr
    assert "--insecure-no-auth" in result.stderr
    assert list(tmp_path.iterdir()) == []  # refused before anything was built


@pytest.mark.slow
def test_serving_without_a_login_beyond_this_machine_must_be_asked_for(real_index, tmp_path):
    with serve(tmp_path / "open-wide", index_dir=real_index[0], args=["--host", "0.0.0.0", "--insecure-no-auth"]) as srv:
        log = srv["log"].read_text(errors="replace")
        assert "警告：服务将在 0.0.0.0 上不设登录对其他机器开放（--insecure-no-auth）" in log
        assert _get(srv["url"] + "/config")[0] == 200


# --- without --auth: this machine only ---------------------------------------------------------


def _outside_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback."""
    found = set()
    try:
        found |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    except OSError:
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.254.254.254", 9))  # UDP: picks the outgoing interface, sends nothing
            found.add(s.getsockname()[0])
    except OSError:
        pass
    return sorted(a for a in found if not a.startswith("127.") and a != "0.0.0.0")


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) listening on ``port``."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:
                out.append(address)
    return out


@pytest.mark.slow
def test_without_auth_only_this_machine_can_connect(open_server):
    log = open_server["log"].read_text(errors="replace")
    assert "服务只监听本机 127.0.0.1" in log
    if Path("/proc/net/tcp").exists():
        assert _listening(open_server["port"]) == ["0100007F"]  # 127.0.0.1, nothing else
    addresses = _outside_addresses()
    if not addresses:
        pytest.skip("this machine has no address other than loopback")
    for address in addresses:
        with pytest.raises(OSError):
            socket.create_connection((address, open_server["port"]), timeout=3).close()


# --- sessions: each user's follow-ups read against that user's own history ---------------------


@pytest.mark.slow
def test_loadtest_conversations_are_told_apart_by_the_real_rewriter(real_index):
    """What `ipqa loadtest` counts as a mix-up: each follow-up's rewrite keeps its own subject and
    never satisfies another conversation's."""
    from assistant import open_index
    from assistant.understanding import QuestionReader

    index = open_index(real_index[0])
    try:
        reader = QuestionReader(index.documents())
    finally:
        index.close()
    pool = conversation_pool()
    assert len(pool) >= 50
    rewritten = {c.key: reader.read(c.follow_up, [{"role": "user", "content": c.first},
                                                  {"role": "assistant", "content": "……"}]).query for c in pool}
    assert [c.key for c in pool if not c.kept(rewritten[c.key])] == []
    assert [(a.key, b.key) for a in pool for b in pool if a is not b and a.kept(rewritten[b.key])] == []


A_FIRST, A_FOLLOW = "荆门高新区专利奖的目标是多少？", "获奖了有奖励吗？"
B_FIRST, B_FOLLOW = "沧州2020年专利申请量目标是多少？", "2015年的基数是多少？"


@pytest.mark.slow
def test_two_clients_interleaving_follow_ups_keep_their_own_subject(open_server):
    from gradio_client import Client

    a, b = Client(open_server["url"], verbose=False), Client(open_server["url"], verbose=False)
    first_a = a.submit(A_FIRST, [], "", "", "", api_name="/ask")
    first_b = b.submit(B_FIRST, [], "", "", "", api_name="/ask")
    history_a = [{"role": "user", "content": A_FIRST}, {"role": "assistant", "content": first_a.result()["answer"]}]
    history_b = [{"role": "user", "content": B_FIRST}, {"role": "assistant", "content": first_b.result()["answer"]}]
    for _ in range(3):  # both follow-ups in flight at once, several times
        jobs = [(a.submit(A_FOLLOW, history_a, "", "", "", api_name="/ask"), "A"),
                (b.submit(B_FOLLOW, history_b, "", "", "", api_name="/ask"), "B")]
        for job, who in jobs:
            rewritten = job.result()["rewritten_query"]
            if who == "A":
                assert "荆门高新区专利奖" in rewritten and "获奖" in rewritten and "沧州" not in rewritten
            else:
                assert "沧州2020年专利申请量" in rewritten and "基数" in rewritten and "荆门" not in rewritten


@pytest.mark.slow
def test_two_browser_sessions_keep_their_own_chat(browser, open_server):  # noqa: F811
    contexts = [browser.new_context(viewport={"width": 1300, "height": 900}, locale="zh-CN") for _ in range(2)]
    try:
        pages = [c.new_page() for c in contexts]
        for pg in pages:
            pg.set_default_timeout(90_000)
            pg.goto(open_server["url"])
            pg.locator("#ipqa-question textarea").wait_for()
        a, b = pages
        _ask(a, "荆门高新区对通过贯标认证的企业有奖励吗？", 0)
        _ask(b, "沧州计划让多少家企业通过贯标认证？", 0)
        # both follow-ups sent before either answer arrives
        for pg, question in ((a, "具体怎么做？"), (b, "由哪个部门负责？")):
            pg.locator("#ipqa-question textarea").fill(question)
            pg.locator("#ipqa-send").click()
        for pg in pages:
            pg.wait_for_function("() => document.querySelectorAll("
                                 "'#ipqa-chat .ipqa-answer, #ipqa-chat .ipqa-notfound').length >= 2")
        rewritten_a = a.locator("#ipqa-chat .ipqa-rewritten").last.inner_text()
        rewritten_b = b.locator("#ipqa-chat .ipqa-rewritten").last.inner_text()
        assert "荆门高新区" in rewritten_a and "沧州" not in rewritten_a
        assert "沧州" in rewritten_b and "荆门" not in rewritten_b
        assert "由哪个部门负责" not in a.locator("#ipqa-chat").inner_text()
        assert "具体怎么做" not in b.locator("#ipqa-chat").inner_text()
    finally:
        for c in contexts:
            c.close()
