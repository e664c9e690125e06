import java.io.StringReader;
import java.io.StringWriter;
import java.net.URI;
import java.net.URLDecoder;
import java.sql.*;
import java.util.Properties;
import org.postgresql.PGConnection;

/** The compatibility scenario with the PostgreSQL JDBC driver (default prepareThreshold). */
public class Compat {
  interface Step { void run() throws Exception; }
  static Connection c;
  static String a, b;

  static void step(String name, Step s) {
    try { s.run(); System.out.println("ok " + name); }
    catch (Throwable e) { System.out.println("fail " + name + ": " + String.valueOf(e).replace('\n', ' ')); }
  }
  static void check(boolean ok, String what) { if (!ok) throw new AssertionError(what); }
  static long one(String sql, Object... args) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(sql)) {
      for (int i = 0; i < args.length; i++) ps.setObject(i + 1, args[i]);
      try (ResultSet rs = ps.executeQuery()) { rs.next(); return rs.getLong(1); }
    }
  }

  public static void main(String[] args) throws Exception {
    URI u = new URI(System.getenv("PGT_URL"));
    String[] ui = u.getRawUserInfo().split(":", 2);
    Properties p = new Properties();
    p.setProperty("user", ui[0]);
    p.setProperty("password", URLDecoder.decode(ui[1], "UTF-8"));
    p.setProperty("sslmode", "disable");
    a = System.getenv("PGT_TENANT_A"); b = System.getenv("PGT_TENANT_B");
    c = DriverManager.getConnection("jdbc:postgresql://" + u.getHost() + ":" + u.getPort() + u.getPath(), p);

    step("crud", () -> {
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("INSERT INTO projects (name) VALUES ('compat-jdbc') RETURNING tenant_id::text")) {
        rs.next(); check(rs.getString(1).equals(a), "tenant");
      }
      try (Statement s = c.createStatement()) { check(s.executeUpdate("DELETE FROM projects WHERE name = 'compat-jdbc'") == 1, "delete"); }
    });
    step("isolation", () -> check(one("SELECT count(*) FROM projects WHERE tenant_id = ?::uuid", b) == 0, "foreign rows"));
    step("prepared", () -> {
      try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM projects WHERE length(name) > ?")) {
        for (int i = 0; i < 15; i++) { // server-side prepared from the 5th execution (prepareThreshold)
          ps.setInt(1, i % 3);
          try (ResultSet rs = ps.executeQuery()) { rs.next(); check(rs.getLong(1) == 2, "count"); }
        }
      }
    });
    step("rollback", () -> {
      // setTransactionIsolation sends SET SESSION CHARACTERISTICS.
      c.setTransactionIsolation(Connection.TRANSACTION_SERIALIZABLE);
      c.setAutoCommit(false);
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SHOW transaction_isolation")) {
        rs.next(); check(rs.getString(1).equals("serializable"), "isolation " + rs.getString(1));
      }
      try (Statement s = c.createStatement()) { s.executeUpdate("INSERT INTO projects (name) VALUES ('compat-rolled-back')"); }
      c.rollback();
      c.setAutoCommit(true);
      c.setTransactionIsolation(Connection.TRANSACTION_READ_COMMITTED);
      check(one("SELECT count(*) FROM projects WHERE name = 'compat-rolled-back'") == 0, "rolled back");
    });
    step("recovery", () -> {
      c.setAutoCommit(false);
      try (Statement s = c.createStatement()) { s.executeQuery("SELECT 1/0"); check(false, "no error"); }
      catch (SQLException e) { check("22012".equals(e.getSQLState()), e.getSQLState()); c.rollback(); }
      c.setAutoCommit(true);
      check(one("SELECT 1") == 1, "after");
    });
    step("large", () -> {
      c.setAutoCommit(false); // a fetch size streams only inside a transaction
      try (Statement s = c.createStatement()) {
        s.setFetchSize(1000);
        int n = 0;
        try (ResultSet rs = s.executeQuery("SELECT generate_series(1, 100000)")) { while (rs.next()) n++; }
        check(n == 100000, "rows " + n);
      }
      c.commit();
      c.setAutoCommit(true);
    });
    step("copy", () -> {
      StringWriter w = new StringWriter();
      c.unwrap(PGConnection.class).getCopyAPI().copyOut("COPY (SELECT tenant_id FROM projects) TO STDOUT", w);
      String[] lines = w.toString().trim().split("\n");
      check(lines.length == 2 && lines[0].equals(a) && lines[1].equals(a), w.toString());
      long n = c.unwrap(PGConnection.class).getCopyAPI().copyIn("COPY projects (name) FROM STDIN (FORMAT csv)",
          new StringReader("compat-copy-1\n\"compat-copy-2\"\n"));
      check(n == 2 && one("SELECT count(*) FROM projects WHERE name LIKE 'compat-copy-%' AND tenant_id = ?::uuid", a) == 2, "copied " + n);
      try (Statement s = c.createStatement()) { s.executeUpdate("DELETE FROM projects WHERE name LIKE 'compat-copy-%'"); }
    });
    step("cancel", () -> {
      Statement s = c.createStatement();
      new Thread(() -> { try { Thread.sleep(500); s.cancel(); } catch (Exception e) { } }).start();
      long t = System.currentTimeMillis();
      try { s.executeQuery("SELECT pg_sleep(10)"); check(false, "not cancelled"); }
      catch (SQLException e) { check("57014".equals(e.getSQLState()), e.getSQLState()); }
      check(System.currentTimeMillis() - t < 8000, "slow cancel");
      check(one("SELECT 1") == 1, "after");
    });
    step("metadata", () -> { // what Metabase calls when it syncs a database
      DatabaseMetaData md = c.getMetaData();
      int tables = 0, cols = 0, pks = 0, fks = 0;
      try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE"})) { while (rs.next()) tables++; }
      try (ResultSet rs = md.getColumns(null, "public", "projects", "%")) { while (rs.next()) cols++; }
      try (ResultSet rs = md.getPrimaryKeys(null, "public", "tasks")) { while (rs.next()) pks++; }
      try (ResultSet rs = md.getImportedKeys(null, "public", "tasks")) { while (rs.next()) fks++; }
      check(tables >= 7 && cols == 6 && pks == 1 && fks == 5, tables + "/" + cols + "/" + pks + "/" + fks);
    });
    c.close();
  }
}
