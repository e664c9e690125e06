"""The compatibility scenario with psycopg2."""
import io, os, threading, time
import psycopg2, psycopg2.errors

url, a, b = os.environ["PGT_URL"], os.environ["PGT_TENANT_A"], os.environ["PGT_TENANT_B"]
c = psycopg2.connect(url)
c.autocommit = True
cur = c.cursor()


def one(sql, args=None):
    cur.execute(sql, args)
    return cur.fetchone()[0]


def step(name, fn):
    try:
        fn()
        print("ok", name, flush=True)
    except Exception as e:
        print("fail", name + ":", repr(e).replace("\n", " "), flush=True)


def crud():
    assert one("INSERT INTO projects (name) VALUES ('compat-psycopg2') RETURNING tenant_id::text") == a
    cur.execute("DELETE FROM projects WHERE name = 'compat-psycopg2'")
    assert cur.rowcount == 1


def isolation():
    assert one("SELECT count(*) FROM projects WHERE tenant_id = %s", (b,)) == 0


def prepared():
    for i in range(15):  # psycopg2 has no server-side prepare; the same query text each time
        assert one("SELECT count(*) FROM projects WHERE length(name) > %s", (i % 3,)) == 2


def rollback():
    c.autocommit = False
    cur.execute("INSERT INTO projects (name) VALUES ('compat-rolled-back')")
    c.rollback()
    c.autocommit = True
    assert one("SELECT count(*) FROM projects WHERE name = 'compat-rolled-back'") == 0


def recovery():
    try:
        cur.execute("SELECT 1/0")
        raise AssertionError("no error")
    except psycopg2.errors.DivisionByZero:
        pass
    assert one("SELECT 1") == 1


def large():
    cur.execute("SELECT generate_series(1, 100000)")
    assert len(cur.fetchall()) == 100000


def copy():
    buf = io.StringIO()
    cur.copy_expert("COPY (SELECT tenant_id FROM projects) TO STDOUT", buf)
    lines = buf.getvalue().split()
    assert len(lines) == 2 and set(lines) == {a}, lines
    # copy_from sends the older option syntax (DELIMITER AS … NULL AS …).
    cur.copy_from(io.StringIO("compat-copy-1\tx\ncompat-copy-2\ty\n"), "projects", columns=("name", "description"))
    assert one("SELECT count(*) FROM projects WHERE name LIKE 'compat-copy-%%' AND tenant_id = %s", (a,)) == 2
    cur.execute("DELETE FROM projects WHERE name LIKE 'compat-copy-%%'")


def cancel():
    threading.Timer(0.5, c.cancel).start()
    t = time.time()
    try:
        cur.execute("SELECT pg_sleep(10)")
        raise AssertionError("not cancelled")
    except psycopg2.errors.QueryCanceled:
        pass
    assert time.time() - t < 8 and one("SELECT 1") == 1


def metadata():
    assert one("SELECT count(*) FROM information_schema.columns WHERE table_name = 'projects'") == 6


for name, fn in [("crud", crud), ("isolation", isolation), ("prepared", prepared), ("rollback", rollback),
                 ("recovery", recovery), ("large", large), ("copy", copy), ("cancel", cancel), ("metadata", metadata)]:
    step(name, fn)
