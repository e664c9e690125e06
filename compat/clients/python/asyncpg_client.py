"""The compatibility scenario with asyncpg (statement cache on)."""
import asyncio, os, time
import asyncpg

url, a, b = os.environ["PGT_URL"], os.environ["PGT_TENANT_A"], os.environ["PGT_TENANT_B"]


async def main():
    c = await asyncpg.connect(url)

    async def step(name, fn):
        try:
            await fn()
            print("ok", name, flush=True)
        except Exception as e:
            print("fail", name + ":", repr(e).replace("\n", " "), flush=True)

    async def crud():
        assert await c.fetchval("INSERT INTO projects (name) VALUES ('compat-asyncpg') RETURNING tenant_id::text") == a
        assert await c.execute("DELETE FROM projects WHERE name = 'compat-asyncpg'") == "DELETE 1"

    async def isolation():
        assert await c.fetchval("SELECT count(*) FROM projects WHERE tenant_id = $1::uuid", b) == 0

    async def prepared():
        for i in range(15):
            assert await c.fetchval("SELECT count(*) FROM projects WHERE length(name) > $1", i % 3) == 2

    async def rollback():
        tr = c.transaction()
        await tr.start()
        await c.execute("INSERT INTO projects (name) VALUES ('compat-rolled-back')")
        await tr.rollback()
        assert await c.fetchval("SELECT count(*) FROM projects WHERE name = 'compat-rolled-back'") == 0

    async def recovery():
        try:
            await c.fetchval("SELECT 1/0")
            raise AssertionError("no error")
        except asyncpg.exceptions.DivisionByZeroError:
            pass
        assert await c.fetchval("SELECT 1") == 1

    async def large():
        assert len(await c.fetch("SELECT generate_series(1, 100000)")) == 100000

    async def copy():
        out = []

        async def sink(data):  # asyncpg awaits its output callback
            out.append(data)

        await c.copy_from_query("SELECT tenant_id FROM projects", output=sink)
        lines = b"".join(out).split()
        assert len(lines) == 2 and set(lines) == {a.encode()}, lines
        # copy_records_to_table sends binary COPY data.
        await c.copy_records_to_table("projects", records=[("compat-copy-1", "x"), ("compat-copy-2", "y")], columns=["name", "description"])
        assert await c.fetchval("SELECT count(*) FROM projects WHERE name LIKE 'compat-copy-%' AND tenant_id = $1::uuid", a) == 2
        await c.execute("DELETE FROM projects WHERE name LIKE 'compat-copy-%'")

    async def cancel():
        t = time.time()
        try:
            await c.fetch("SELECT pg_sleep(10)", timeout=0.5)
            raise AssertionError("not cancelled")
        except asyncio.TimeoutError:
            pass
        assert time.time() - t < 8 and await c.fetchval("SELECT 1") == 1

    async def metadata():
        assert await c.fetchval("SELECT count(*) FROM information_schema.columns WHERE table_name = 'projects'") == 6

    for name, fn in [("crud", crud), ("isolation", isolation), ("prepared", prepared), ("rollback", rollback),
                     ("recovery", recovery), ("large", large), ("copy", copy), ("cancel", cancel), ("metadata", metadata)]:
        await step(name, fn)
    await c.close()


asyncio.run(main())
