package config

import (
	"strings"
	"testing"
	"time"
)

// The documented example must load, and its values must be the defaults
// (apart from the examples it gives for keys without one).
func TestExampleConfigLoadsWithDefaults(t *testing.T) {
	t.Setenv("PGTENANT_CONTEXT_KEY", "k:"+strings.Repeat("ab", 32))
	t.Setenv("PGTENANT_JWT_SECRET", strings.Repeat("s", 32))
	c, err := Load("../../configs/pgtenant.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d Config
	d.Databases = map[string]Database{"app": {Logins: c.Databases["app"].Logins}}
	d.applyDefaults()
	got, want := c.Databases["app"].Pool, d.Databases["app"].Pool
	if got != want {
		t.Errorf("example pool %+v, defaults %+v", got, want)
	}
	if c.Listen != d.Listen || c.ClientTLS.Mode != d.ClientTLS.Mode || c.JWT.Leeway != d.JWT.Leeway ||
		c.APIKeys != d.APIKeys || c.Timeouts != d.Timeouts || c.JWT.TenantClaim != d.JWT.TenantClaim ||
		c.PreparedStatements != d.PreparedStatements {
		t.Errorf("example and defaults differ:\n%+v\n%+v", c, d)
	}
	if c.Databases["app"].Pool.AcquireTimeout != 5*time.Second {
		t.Errorf("acquire_timeout %s", c.Databases["app"].Pool.AcquireTimeout)
	}
}

func TestInvalidConfigs(t *testing.T) {
	base := `context_key: "k:` + strings.Repeat("ab", 32) + `"
databases:
  app:
    logins:
      - {user: t, password: x, roles: [erun_tenant]}
      - {user: o, password: x, roles: [erun_operations], resolver: true}
`
	cases := map[string]struct{ yaml, want string }{
		"unknown key":       {base + "bogus: 1\n", "field bogus not found"},
		"no databases":      {`context_key: "k:x"` + "\n", "no databases"},
		"no resolver":       {strings.Replace(base, ", resolver: true", "", 1), "resolver"},
		"role without pool": {base + "roles: {admin: erun_admin}\n", "no login serves role erun_admin"},
		"bad tls mode":      {base + "client_tls: {mode: sometimes}\n", "client_tls.mode"},
		"key without alg":   {base + "jwt: {keys: [{secret: " + strings.Repeat("s", 32) + "}]}\n", "alg is required"},
		"two key sources":   {base + "jwt: {keys: [{alg: HS256, secret: x, pem_file: y}]}\n", "exactly one"},
		"no context key":    {strings.Replace(base, `context_key: "k:`+strings.Repeat("ab", 32)+`"`, "", 1), "context_key"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
	if _, err := Parse([]byte(base)); err != nil {
		t.Fatalf("the base config is valid: %v", err)
	}
}
