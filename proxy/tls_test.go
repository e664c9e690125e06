package proxy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtenant/pgtenant/internal/pgtest"
	"github.com/pgtenant/pgtenant/internal/proxytest"
)

// testCA issues certificates for localhost and 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pgtenant test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM certificate and key for localhost / 127.0.0.1.
func (ca *testCA) issue(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTLS: clients reach pgtenant over TLS (require and verify-full, pgx
// and psql), plaintext is refused when TLS is required, and pgtenant
// reaches PostgreSQL over TLS, verifying its certificate.
func TestTLS(t *testing.T) {
	ctx := context.Background()
	ca := newCA(t)
	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.pem", ca.pem)

	// PostgreSQL with ssl=on and a certificate from the same CA.
	pgCert, pgKey := ca.issue(t)
	bin, err := pgtest.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pgtest.StartWith(ctx, bin, map[string]string{"ssl": "on"},
		map[string][]byte{"server.crt": pgCert, "server.key": pgKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)

	cert, key := ca.issue(t)
	certFile, keyFile := writeFile(t, dir, "proxy.crt", cert), writeFile(t, dir, "proxy.key", key)
	e := proxytest.Start(t, proxytest.Options{Server: srv,
		ClientTLS: "client_tls: {mode: require, cert_file: " + certFile + ", key_file: " + keyFile + "}",
		ServerTLS: "server_tls: verify-full\n    server_ca_file: " + caFile})
	token := e.Token(e.A.ID, "tenant", nil)
	_, port := e.HostPort()
	urlWith := func(host, query string) string {
		u := url.URL{Scheme: "postgres", User: url.UserPassword("app", token), Host: net.JoinHostPort(host, port), Path: "/" + e.DBName, RawQuery: query}
		return u.String()
	}
	for name, dsn := range map[string]string{
		"require":     urlWith("127.0.0.1", "sslmode=require"),
		"verify-full": urlWith("localhost", "sslmode=verify-full&sslrootcert="+caFile),
	} {
		t.Run("pgx "+name, func(t *testing.T) {
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			var n, pid int
			if err := c.QueryRow(ctx, "SELECT count(*), pg_backend_pid() FROM projects").Scan(&n, &pid); err != nil {
				t.Fatal(err)
			}
			var serverSSL bool
			if err := e.Admin.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = $1", pid).Scan(&serverSSL); err != nil {
				t.Fatal(err)
			}
			if n != 2 || !serverSSL {
				t.Fatalf("%d projects; pgtenant to PostgreSQL over TLS: %v", n, serverSSL)
			}
			if _, isTLS := c.PgConn().Conn().(*tls.Conn); !isTLS {
				t.Fatalf("the client's connection to pgtenant is %T, not TLS", c.PgConn().Conn())
			}
		})
	}
	t.Run("psql verify-full", func(t *testing.T) {
		cmd := exec.Command(proxytest.PSQL(t), urlWith("localhost", "sslmode=verify-full&sslrootcert="+caFile), "-XAtc", "SELECT count(*) FROM projects")
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "2" {
			t.Fatalf("psql: %v: %s", err, out)
		}
	})
	t.Run("verify-full with the wrong CA is refused by the client", func(t *testing.T) {
		other := writeFile(t, dir, "other.pem", newCA(t).pem)
		if _, err := pgx.Connect(ctx, urlWith("localhost", "sslmode=verify-full&sslrootcert="+other)); err == nil {
			t.Fatal("connected although the certificate is not from the given CA")
		}
	})
	t.Run("plaintext is refused", func(t *testing.T) {
		_, err := pgx.Connect(ctx, urlWith("127.0.0.1", "sslmode=disable"))
		if sqlstate(err) != "28000" || !strings.Contains(err.Error(), "TLS") {
			t.Fatalf("err = %v, want 28000 asking for TLS", err)
		}
	})
}
