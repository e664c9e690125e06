// Package config is pgtenant's configuration: one YAML file loaded into a
// plain struct, defaults applied in one place, validated once. Secrets may
// come from the environment (a *_env key names the variable), so the file
// itself can be committed. configs/pgtenant.example.yaml documents every key.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration.
type Config struct {
	Listen    string              `yaml:"listen"`
	ClientTLS ClientTLS           `yaml:"client_tls"`
	Databases map[string]Database `yaml:"databases"`
	JWT       JWT                 `yaml:"jwt"`
	APIKeys   APIKeys             `yaml:"api_keys"`
	Roles     map[string]string   `yaml:"roles"` // credential role -> PostgreSQL role
	// CrossTenantRoles need no tenant in the credential (they see all
	// tenants through their own policies).
	CrossTenantRoles []string `yaml:"cross_tenant_roles"`
	ContextKey       Secret   `yaml:"context_key"`
	Timeouts         Timeouts `yaml:"timeouts"`
	// PreparedStatements bounds the memory protocol-level prepared
	// statements may take.
	PreparedStatements PreparedStatements `yaml:"prepared_statements"`
	Log                Log                `yaml:"log"`
}

// ClientTLS configures TLS between clients and pgtenant.
type ClientTLS struct {
	// Mode: "require_non_loopback" (default: loopback clients may skip TLS,
	// all others must use it), "require", "allow", or "disable".
	Mode     string `yaml:"mode"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Database is one backend database clients can name in their startup.
type Database struct {
	Host   string `yaml:"host"`
	Port   int    `yaml:"port"`
	DBName string `yaml:"dbname"`
	// ServerTLS is a libpq sslmode: disable, prefer, require, verify-ca,
	// verify-full; ServerCAFile the CA for the verify modes.
	ServerTLS    string  `yaml:"server_tls"`
	ServerCAFile string  `yaml:"server_ca_file"`
	Logins       []Login `yaml:"logins"`
	Pool         Pool    `yaml:"pool"`
}

// Login is a role pgtenant logs in as, and the PostgreSQL roles it may SET
// ROLE to. A client whose role is in Roles is served by this login's pool.
type Login struct {
	User     string   `yaml:"user"`
	Password Secret   `yaml:"password"`
	Roles    []string `yaml:"roles"`
	// Resolver marks the login used to look up API keys and issuers.
	Resolver bool `yaml:"resolver"`
}

// Pool sizes and times one (database, login) pool.
type Pool struct {
	MaxSize        int           `yaml:"max_size"`
	MinIdle        int           `yaml:"min_idle"`
	MaxWaiters     int           `yaml:"max_waiters"`
	AcquireTimeout time.Duration `yaml:"acquire_timeout"`
	IdleTimeout    time.Duration `yaml:"idle_timeout"`
	MaxLifetime    time.Duration `yaml:"max_lifetime"`
	// CheckAfter: a connection idle for longer is checked before reuse.
	CheckAfter time.Duration `yaml:"check_after"`
}

// JWT configures token verification.
type JWT struct {
	Keys        []JWTKey      `yaml:"keys"`
	Issuers     []string      `yaml:"issuers"`  // accepted iss values; empty accepts any
	Audience    string        `yaml:"audience"` // required aud, if set
	Leeway      time.Duration `yaml:"leeway"`   // clock skew allowed for exp/nbf/iat
	RequireExp  *bool         `yaml:"require_exp"`
	TenantClaim string        `yaml:"tenant_claim"`
	RoleClaim   string        `yaml:"role_claim"`
	// IssuerMode takes the tenant from tenant_issuers (by iss) instead of
	// the tenant claim.
	IssuerMode bool `yaml:"issuer_mode"`
}

// JWTKey is one verification key. Exactly one of Secret, PEMFile, JWKSFile
// is set. Alg pins the algorithm (HS256, RS256, PS256, ES256, EdDSA, ...).
type JWTKey struct {
	KID      string `yaml:"kid"`
	Alg      string `yaml:"alg"`
	Secret   Secret `yaml:"secret"`
	PEMFile  string `yaml:"pem_file"`
	JWKSFile string `yaml:"jwks_file"`
}

// APIKeys configures API-key lookups.
type APIKeys struct {
	CacheTTL         time.Duration `yaml:"cache_ttl"`
	NegativeCacheTTL time.Duration `yaml:"negative_cache_ttl"`
}

// PreparedStatements bounds prepared statements.
type PreparedStatements struct {
	// MaxPerServerConnection: beyond it, the least recently used statement
	// is closed on that server connection (and re-prepared when needed).
	MaxPerServerConnection int `yaml:"max_per_server_connection"`
	// MaxPerClient: a client preparing more gets SQLSTATE 53400.
	MaxPerClient int `yaml:"max_per_client"`
}

// Timeouts bound the client side.
type Timeouts struct {
	Login time.Duration `yaml:"login"` // startup + authentication
	// ServerConnect bounds dialling and authenticating a server connection.
	ServerConnect time.Duration `yaml:"server_connect"`
	// Shutdown: how long serve waits for clients to finish on SIGTERM.
	Shutdown time.Duration `yaml:"shutdown"`
}

// Log configures logging.
type Log struct {
	Format string `yaml:"format"` // console or json
	Level  string `yaml:"level"`
}

// Secret is a value given inline or through an environment variable:
//
//	password: {env: PGTENANT_TENANT_LOGIN_PASSWORD}
//	password: "inline (development only)"
type Secret struct {
	Value string `yaml:"value"`
	Env   string `yaml:"env"`
}

// UnmarshalYAML accepts a plain string or {value|env}.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&s.Value)
	}
	type plain Secret
	return n.Decode((*plain)(s))
}

// Get returns the secret, reading the environment if Env is set.
func (s Secret) Get() string {
	if s.Env != "" {
		return os.Getenv(s.Env)
	}
	return s.Value
}

// Load reads, defaults and validates a configuration file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// Parse is Load on bytes.
func Parse(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &c, nil
}

func (c *Config) applyDefaults() {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Listen, "127.0.0.1:6432")
	def(&c.ClientTLS.Mode, "require_non_loopback")
	def(&c.JWT.TenantClaim, "tenant_id")
	def(&c.JWT.RoleClaim, "role")
	defDur(&c.JWT.Leeway, 30*time.Second)
	if c.JWT.RequireExp == nil {
		t := true
		c.JWT.RequireExp = &t
	}
	defDur(&c.APIKeys.CacheTTL, 30*time.Second)
	defDur(&c.APIKeys.NegativeCacheTTL, 5*time.Second)
	defDur(&c.Timeouts.Login, 15*time.Second)
	defDur(&c.Timeouts.ServerConnect, 10*time.Second)
	defDur(&c.Timeouts.Shutdown, 30*time.Second)
	if c.PreparedStatements.MaxPerServerConnection == 0 {
		c.PreparedStatements.MaxPerServerConnection = 500
	}
	if c.PreparedStatements.MaxPerClient == 0 {
		c.PreparedStatements.MaxPerClient = 5000
	}
	def(&c.Log.Format, "console")
	def(&c.Log.Level, "info")
	if c.CrossTenantRoles == nil {
		c.CrossTenantRoles = []string{"erun_operations"}
	}
	if c.Roles == nil {
		c.Roles = map[string]string{"tenant": "erun_tenant", "operations": "erun_operations"}
	}
	for name, db := range c.Databases {
		def(&db.Host, "127.0.0.1")
		if db.Port == 0 {
			db.Port = 5432
		}
		def(&db.DBName, name)
		def(&db.ServerTLS, "prefer")
		p := &db.Pool
		if p.MaxSize == 0 {
			p.MaxSize = 20
		}
		if p.MaxWaiters == 0 {
			p.MaxWaiters = 1000
		}
		defDur(&p.AcquireTimeout, 5*time.Second)
		defDur(&p.IdleTimeout, 10*time.Minute)
		defDur(&p.MaxLifetime, time.Hour)
		defDur(&p.CheckAfter, 30*time.Second)
		c.Databases[name] = db
	}
}

// Validate reports the first problem that would stop pgtenant from serving.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen %q: %w", c.Listen, err)
	}
	switch c.ClientTLS.Mode {
	case "require_non_loopback", "require", "allow", "disable":
	default:
		return fmt.Errorf("client_tls.mode %q: want require_non_loopback, require, allow or disable", c.ClientTLS.Mode)
	}
	if (c.ClientTLS.CertFile == "") != (c.ClientTLS.KeyFile == "") {
		return errors.New("client_tls: give both cert_file and key_file, or neither")
	}
	if c.ClientTLS.Mode == "require" && c.ClientTLS.CertFile == "" {
		return errors.New("client_tls.mode require needs cert_file and key_file")
	}
	if len(c.Databases) == 0 {
		return errors.New("no databases configured")
	}
	pgRoles := map[string]bool{}
	for _, r := range c.Roles {
		pgRoles[r] = true
	}
	for name, db := range c.Databases {
		if len(db.Logins) == 0 {
			return fmt.Errorf("database %s: no logins", name)
		}
		switch db.ServerTLS {
		case "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
		default:
			return fmt.Errorf("database %s: server_tls %q is not an sslmode", name, db.ServerTLS)
		}
		served := map[string]string{}
		resolvers := 0
		for _, l := range db.Logins {
			if l.User == "" || len(l.Roles) == 0 {
				return fmt.Errorf("database %s: every login needs user and roles", name)
			}
			for _, r := range l.Roles {
				if prev, dup := served[r]; dup {
					return fmt.Errorf("database %s: role %s is served by both %s and %s", name, r, prev, l.User)
				}
				served[r] = l.User
			}
			if l.Resolver {
				resolvers++
			}
		}
		for r := range pgRoles {
			if _, ok := served[r]; !ok {
				return fmt.Errorf("database %s: no login serves role %s (from roles:)", name, r)
			}
		}
		if resolvers != 1 {
			return fmt.Errorf("database %s: mark exactly one login resolver: true (it looks up API keys and issuers)", name)
		}
		if db.Pool.MaxSize < 1 || db.Pool.MinIdle < 0 || db.Pool.MinIdle > db.Pool.MaxSize {
			return fmt.Errorf("database %s: pool sizes max_size=%d min_idle=%d", name, db.Pool.MaxSize, db.Pool.MinIdle)
		}
	}
	for i, k := range c.JWT.Keys {
		n := 0
		for _, set := range []bool{k.Secret.Get() != "" || k.Secret.Env != "", k.PEMFile != "", k.JWKSFile != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("jwt.keys[%d]: set exactly one of secret, pem_file, jwks_file", i)
		}
		if k.JWKSFile == "" && k.Alg == "" {
			return fmt.Errorf("jwt.keys[%d]: alg is required (the algorithm is pinned per key)", i)
		}
	}
	if c.ContextKey.Get() == "" {
		return errors.New("context_key: not set (give {env: PGTENANT_CONTEXT_KEY})")
	}
	return nil
}
