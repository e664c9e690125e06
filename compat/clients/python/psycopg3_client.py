"""The compatibility scenario with psycopg 3 (prepared statements on)."""
import os, threading, time
import psycopg

url, a, b = os.environ["PGT_URL"], os.environ["PGT_TENANT_A"], os.environ["PGT_TENANT_B"]


def step(name, fn):
    try:
        fn()
        print("ok", name, flush=True)
    except Exception as e:  # report and go on: the harness decides
        print("fail", name + ":", repr(e).replace("\n", " "), flush=True)


c = psycopg.connect(url, autocommit=True, prepare_threshold=1)


def crud():
    r = c.execute("INSERT INTO projects (name) VALUES ('compat-psycopg3') RETURNING tenant_id::text").fetchone()
    assert r[0] == a, r
    c.execute("UPDATE projects SET description = 'x' WHERE name = 'compat-psycopg3'")
    assert c.execute("DELETE FROM projects WHERE name = 'compat-psycopg3'").rowcount == 1


def isolation():
    assert c.execute("SELECT count(*) FROM projects WHERE tenant_id = %s", (b,)).fetchone()[0] == 0
    assert c.execute("SELECT count(DISTINCT tenant_id) FROM tasks").fetchone()[0] == 1


def prepared():
    for i in range(15):
        n = c.execute("SELECT count(*) FROM projects WHERE length(name) > %s", (i % 3,)).fetchone()[0]
        assert n == 2, n


def rollback():
    c.autocommit = False
    c.execute("INSERT INTO projects (name) VALUES ('compat-rolled-back')")
    c.rollback()
    c.autocommit = True
    assert c.execute("SELECT count(*) FROM projects WHERE name = 'compat-rolled-back'").fetchone()[0] == 0


def recovery():
    try:
        c.execute("SELECT 1/0")
        raise AssertionError("no error")
    except psycopg.errors.DivisionByZero:
        pass
    assert c.execute("SELECT 1").fetchone()[0] == 1


def large():
    n = sum(1 for _ in c.execute("SELECT generate_series(1, 100000)"))
    assert n == 100000, n


def copy():
    with c.cursor().copy("COPY (SELECT tenant_id FROM projects) TO STDOUT") as cp:
        rows = [r for r in cp.rows()]
    assert len(rows) == 2 and all(r[0] == a for r in rows), rows
    with c.transaction():  # COPY FROM inside a transaction
        with c.cursor().copy("COPY projects (name) FROM STDIN") as cp:
            for i in range(3):
                cp.write_row((f"compat-copy-{i}",))
    n = c.execute("SELECT count(*) FROM projects WHERE name LIKE 'compat-copy-%%' AND tenant_id = %s", (a,)).fetchone()[0]
    assert n == 3, n
    c.execute("DELETE FROM projects WHERE name LIKE 'compat-copy-%%'")


def cancel():
    threading.Timer(0.5, c.cancel).start()
    t = time.time()
    try:
        c.execute("SELECT pg_sleep(10)")
        raise AssertionError("not cancelled")
    except psycopg.errors.QueryCanceled:
        pass
    assert time.time() - t < 8
    assert c.execute("SELECT 1").fetchone()[0] == 1


def metadata():
    tables = {r[0] for r in c.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert {"projects", "tasks"} <= tables, tables
    cols = c.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'projects'").fetchone()[0]
    assert cols == 6, cols


for name, fn in [("crud", crud), ("isolation", isolation), ("prepared", prepared), ("rollback", rollback),
                 ("recovery", recovery), ("large", large), ("copy", copy), ("cancel", cancel), ("metadata", metadata)]:
    step(name, fn)
